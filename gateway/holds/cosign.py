"""Co-sign: a supervisor certified for the task signs for a trainee's result (DOMAIN rule 2).

Any supervisor certified for the same task may co-sign, not only the one the trainee's
certification names (the signature records which it was). With digital signing the supervisor
must be signed in while the trainee works: the signature records whether they had an active
web session when the result was performed. A missing session does not block the co-signature
(the supervisor may have stood beside the trainee), but it is recorded and shown.
"""

from __future__ import annotations

from gateway.holds.outcome import (
    NOTE_NO_SESSION,
    NOTE_NOT_NAMED_SUPERVISOR,
    NOTE_SESSION,
    ActionOutcome,
)
from gateway.holds.signing import sign_off
from gateway.holds.subject import Subject, prepare, task_text
from gateway.people.roles import HoldAction
from gateway.rules import RuleContext
from gateway.store.sessions import had_active_session
from gateway.store.writer import Tx


def cosign(
    tx: Tx, result_id: int, person: str, *, context: RuleContext, comment: str = ""
) -> ActionOutcome:
    """``person`` co-signs ``result_id``'s ``awaiting_cosign`` hold.

    Done: queued or still_held, with the note ``session`` or ``no_session`` (and
    ``not_named_supervisor`` when the trainee's certification names someone else).
    Refusals: no_such_result, test_data, not_held, no_open_hold, unknown_person,
    inactive_person, wrong_role, same_person, not_certified.
    """
    subject = prepare(tx, result_id, HoldAction.COSIGN, person, context)
    if not isinstance(subject, Subject):
        return subject
    worked_at = subject.performed_at
    present = had_active_session(tx.conn, person, worked_at)
    trainee = subject.performer or ""
    cert = subject.context.facts.certification_for(trainee, subject.work) if trainee else None
    named = cert.supervisor if cert is not None else ""
    notes = [NOTE_SESSION if present else NOTE_NO_SESSION]
    if named and named != person:
        notes.append(NOTE_NOT_NAMED_SUPERVISOR)
    detail = {
        "trainee": trainee,
        "task": task_text(subject.work),
        "value": subject.result.value,
        "unit": subject.result.unit,
        "trainee_worked_at": worked_at.isoformat(),
        "supervisor_session": present,
        "named_supervisor": named,
    }
    return sign_off(
        tx,
        subject,
        HoldAction.COSIGN,
        comment=comment.strip(),
        detail=detail,
        notes=tuple(notes),
        params={"named_supervisor": named, "trainee": trainee},
    )
