"""Release and override: a person who may end a hold says, with a note, that it may go on.

``release`` ends the holds whose reason a release ends (a duplicate, an unmapped test, a
missing patient ID, a LIS message that could not be built); never an invalid patient ID (only
a correction ends that), the people holds (each has its own action) or test data.
``override`` ends ``uncertified_operator``: a supervisor or quality manager, not the performer,
takes responsibility for the result with a reason (the other way out is a re-run by a certified
operator, which replaces it: ``gateway.holds.rerun``).
"""

from __future__ import annotations

from gateway.holds.outcome import ActionOutcome, Refusal, refused
from gateway.holds.signing import sign_off
from gateway.holds.subject import Subject, prepare
from gateway.people.roles import HoldAction
from gateway.rules import RuleContext
from gateway.store.writer import Tx


def release(
    tx: Tx, result_id: int, person: str, *, note: str, context: RuleContext
) -> ActionOutcome:
    """``person`` releases ``result_id``'s holds that a release ends; ``note`` (required) says
    why it may go out. Refusals: no_such_result, test_data, not_held, needs_correction,
    no_open_hold, unknown_person, inactive_person, wrong_role, note_required."""
    subject = prepare(tx, result_id, HoldAction.RELEASE, person, context)
    if not isinstance(subject, Subject):
        return subject
    if not note.strip():
        return refused(result_id, HoldAction.RELEASE, Refusal.NOTE_REQUIRED, "held")
    return sign_off(
        tx, subject, HoldAction.RELEASE, comment=note.strip(), detail={"note": note.strip()}
    )


def override(
    tx: Tx, result_id: int, person: str, *, reason: str, context: RuleContext
) -> ActionOutcome:
    """``person`` overrides ``result_id``'s ``uncertified_operator`` hold with ``reason``
    (required). Refusals: no_such_result, test_data, not_held, no_open_hold, unknown_person,
    inactive_person, wrong_role, same_person, reason_required."""
    subject = prepare(tx, result_id, HoldAction.OVERRIDE, person, context)
    if not isinstance(subject, Subject):
        return subject
    if not reason.strip():
        return refused(result_id, HoldAction.OVERRIDE, Refusal.REASON_REQUIRED, "held")
    detail = {
        "reason": reason.strip(),
        "operator": subject.result.operator_id,
        "performer": subject.performer or "",
        "task": f"{subject.work.instrument_id}:{subject.work.test_code}",
    }
    return sign_off(tx, subject, HoldAction.OVERRIDE, comment=reason.strip(), detail=detail)
