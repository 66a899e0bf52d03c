"""The unmapped-test rule: hold results whose instrument test code has no [[tests]] mapping."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway.model import Hold, HoldReason, Result
from gateway.people.roles import release_role

if TYPE_CHECKING:
    from gateway.rules import RuleContext


def unmapped_test_rule(result: Result, context: RuleContext) -> Sequence[Hold]:
    """Hold a result whose (instrument, test code) is not mapped, unless forwarding is allowed."""
    if context.forward_unmapped or context.find_test(result.instrument_id, result.test_code):
        return ()
    return (
        Hold(
            reason=HoldReason.UNMAPPED_TEST,
            params=(("instrument", result.instrument_id), ("code", result.test_code)),
            release_role=release_role(HoldReason.UNMAPPED_TEST),
        ),
    )
