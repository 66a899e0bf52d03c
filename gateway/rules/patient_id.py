"""The patient ID rule: hold results with a missing or invalid Norwegian person identifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway.model import Hold, HoldReason, Result
from gateway.national_id import classify, mask
from gateway.people.roles import release_role

if TYPE_CHECKING:
    from gateway.rules import RuleContext


def patient_id_rule(result: Result, context: RuleContext) -> Sequence[Hold]:
    """Hold a result whose patient ID is missing (when required) or not a valid Norwegian ID."""
    patient_id = result.patient_id.strip()
    if not patient_id:
        if not context.require_patient_id:
            return ()
        return (
            Hold(
                reason=HoldReason.MISSING_PATIENT_ID,
                params=(("instrument", result.instrument_id),),
                release_role=release_role(HoldReason.MISSING_PATIENT_ID),
            ),
        )
    check = classify(
        patient_id,
        allow_synthetic=context.allow_synthetic_ids,
        accept_2032_rule=context.accept_2032_ids,
    )
    if check.valid:
        return ()
    return (
        Hold(
            reason=HoldReason.INVALID_PATIENT_ID,
            # masked: the hold is shown and logged; the problem's params never hold the number
            params=(
                ("patient_id", mask(patient_id)),
                ("kind", check.kind or "unknown"),
                ("problem", check.code),
                *check.params,
            ),
            release_role=release_role(HoldReason.INVALID_PATIENT_ID),
        ),
    )
