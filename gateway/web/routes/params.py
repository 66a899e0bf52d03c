"""Query parameter types and limits shared by the pages and the JSON API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, Literal, TypeVar

from fastapi import HTTPException

#: the largest row id a store can hold (a signed 64-bit integer): a larger one is not found,
#: rather than an OverflowError from the database driver
MAX_ROW_ID: Final = 2**63 - 1

#: rows a list page shows at most
PAGE_LIMIT: Final = 200

QuarantineState = Literal["", "open", "replayed", "discarded"]
OrderState = Literal["open", "cancelled", "all"]
ORDER_STATES: Final[tuple[OrderState, ...]] = ("open", "cancelled", "all")

T = TypeVar("T")


def order_state_filter(state: OrderState) -> str | None:
    """The worklist store's state filter for a chosen state ("all": no filter)."""
    return None if state == "all" else state


def is_row_id(value: int) -> bool:
    """Whether ``value`` can be a row id at all (so the store can be asked for it)."""
    return 1 <= value <= MAX_ROW_ID


async def row_or_404(row_id: int, what: str, fetch: Callable[[], Awaitable[T | None]]) -> T:
    """``fetch()``'s row, or 404 ("<what> <id> not found") when there is none; an id no row
    can have is not even asked for."""
    found = await fetch() if is_row_id(row_id) else None
    if found is None:
        raise HTTPException(status_code=404, detail=f"{what} {row_id} not found")
    return found
