"""Release and override: a person who may end a hold says, with a note, that it may go on.

``release`` ends the holds whose reason a release ends (a duplicate, an unmapped test, a
missing patient ID, a LIS message that could not be built); never an invalid patient ID (only
a correction ends that), the people holds (each has its own action) or test data.
``release`` of a ``qc_lockout`` hold is refused while the instrument's lockout is open
(``lockout_open``); ``override`` ends it while locked, with a reason and a deviation.
``override`` ends ``uncertified_operator``: a supervisor or quality manager, not the performer,
takes responsibility for the result with a reason (the other way out is a re-run by a certified
operator, which replaces it: ``gateway.holds.rerun``).
"""

from __future__ import annotations

from gateway.holds.outcome import ActionOutcome, Refusal, refused
from gateway.holds.signing import sign_off
from gateway.holds.subject import Subject, prepare
from gateway.model import Deviation, HoldReason
from gateway.people.roles import HoldAction
from gateway.rules import RuleContext
from gateway.store.qc_state import lockout_open_for
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
    if any(h.reason == HoldReason.QC_LOCKOUT for h in subject.ending):
        lockout = lockout_open_for(tx.conn, subject.result.instrument_id, subject.result.test_code)
        if lockout is not None:
            return refused(
                result_id, HoldAction.RELEASE, Refusal.LOCKOUT_OPEN, "held", lockout=str(lockout)
            )
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
    if any(h.reason == HoldReason.QC_LOCKOUT for h in subject.ending):
        _qc_override_deviation(tx, subject, person, reason.strip())
    detail = {
        "reason": reason.strip(),
        "operator": subject.result.operator_id,
        "performer": subject.performer or "",
        "task": f"{subject.work.instrument_id}:{subject.work.test_code}",
    }
    return sign_off(tx, subject, HoldAction.OVERRIDE, comment=reason.strip(), detail=detail)


def _qc_override_deviation(tx: Tx, subject: Subject, person: str, reason: str) -> None:
    """A result let out past a QC lockout is a deviation to follow up (kind
    qc_lockout_override, category equipment)."""
    from gateway.catalogue import FALLBACK_LANGUAGE, text
    from gateway.deviations import record

    record(
        tx,
        Deviation(
            kind="qc_lockout_override",
            summary=text(
                FALLBACK_LANGUAGE,
                "qc.deviation.qc_lockout_override",
                instrument=subject.result.instrument_id,
                test=subject.result.test_code,
                result=str(subject.result_id),
            ),
            detail=reason,
            category="equipment",
            instrument_id=subject.result.instrument_id,
            result_id=subject.result_id,
        ),
        actor=person,
    )
