"""The patient ID rule: hold results with a missing or invalid Norwegian person identifier."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from gateway.model import Hold, HoldReason, Result
from gateway.national_id import classify, describe, describe_nb, mask, problem_nb

if TYPE_CHECKING:
    from gateway.rules import RuleContext

RELEASE_ROLE = "bioingenior"

ACTIONS: Mapping[str, Mapping[str, str]] = {
    "en": {
        HoldReason.MISSING_PATIENT_ID: (
            "Find the patient ID on the sample label or the order, add it to the result, "
            "then release"
        ),
        HoldReason.INVALID_PATIENT_ID: (
            "Check the sample label and correct the patient ID, then release"
        ),
    },
    "nb": {
        HoldReason.MISSING_PATIENT_ID: (
            "Finn pasientens fødselsnummer eller D-nummer på prøveetiketten eller rekvisisjonen, "
            "legg det inn på svaret og frigi deretter"
        ),
        HoldReason.INVALID_PATIENT_ID: (
            "Kontroller prøveetiketten og rett pasientens ID-nummer, og frigi deretter"
        ),
    },
}


def patient_id_rule(result: Result, context: RuleContext) -> Sequence[Hold]:
    """Hold a result whose patient ID is missing (when required) or not a valid Norwegian ID."""
    patient_id = result.patient_id.strip()
    if not patient_id:
        if not context.require_patient_id:
            return ()
        return (
            Hold(
                reason=HoldReason.MISSING_PATIENT_ID,
                detail=f"The result from {result.instrument_id} has no patient ID",
                detail_nb=f"Svaret fra {result.instrument_id} mangler pasient-ID",
                release_role=RELEASE_ROLE,
                action=ACTIONS["en"][HoldReason.MISSING_PATIENT_ID],
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
            detail=(
                f"Patient ID {mask(patient_id)} is not a valid {describe(check.kind)}: "
                f"{check.problem}"
            ),
            detail_nb=(
                f"Pasient-ID {mask(patient_id)} er ikke et gyldig {describe_nb(check.kind)}: "
                f"{problem_nb(check.problem)}"
            ),
            release_role=RELEASE_ROLE,
            action=ACTIONS["en"][HoldReason.INVALID_PATIENT_ID],
        ),
    )
