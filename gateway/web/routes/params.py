"""Query parameter types and limits shared by the pages and the JSON API."""

from __future__ import annotations

from typing import Final, Literal

#: rows a list page shows at most
PAGE_LIMIT: Final = 200

QuarantineState = Literal["", "open", "replayed", "discarded"]
OrderState = Literal["open", "cancelled", "all"]
ORDER_STATES: Final[tuple[OrderState, ...]] = ("open", "cancelled", "all")


def order_state_filter(state: OrderState) -> str | None:
    """The worklist store's state filter for a chosen state ("all": no filter)."""
    return None if state == "all" else state
