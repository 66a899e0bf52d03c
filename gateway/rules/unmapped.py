"""The unmapped-test rule: hold results whose instrument test code has no [[tests]] mapping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from gateway.model import Hold, HoldReason, Result

if TYPE_CHECKING:
    from gateway.rules import RuleContext

RELEASE_ROLE = "kvalitetsansvarlig"

ACTIONS: Mapping[str, Mapping[str, str]] = {
    "en": {
        HoldReason.UNMAPPED_TEST: (
            "Add a [[tests]] mapping with the NLK code, or release to send with the local code"
        ),
    },
    "nb": {
        HoldReason.UNMAPPED_TEST: (
            "Legg inn en [[tests]]-kobling med NLK-kode, eller frigi for å sende med "
            "instrumentets egen kode"
        ),
    },
}


def unmapped_test_rule(result: Result, context: RuleContext) -> Sequence[Hold]:
    """Hold a result whose (instrument, test code) is not mapped, unless forwarding is allowed."""
    if context.forward_unmapped or context.find_test(result.instrument_id, result.test_code):
        return ()
    return (
        Hold(
            reason=HoldReason.UNMAPPED_TEST,
            detail=(
                f"Instrument {result.instrument_id!r} sent test code {result.test_code!r}, "
                "which has no [[tests]] mapping"
            ),
            detail_nb=(
                f"Instrumentet {result.instrument_id!r} sendte analysekoden "
                f"{result.test_code!r}, som ikke har noen [[tests]]-kobling"
            ),
            release_role=RELEASE_ROLE,
            action=ACTIONS["en"][HoldReason.UNMAPPED_TEST],
        ),
    )
