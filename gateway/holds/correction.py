"""Correct a held result's patient ID or specimen ID (the sample label was misread or mistyped).

The original is kept (``corrections``: who, why, when, old and new), the result holds the new
value, and the rules run again on it: its open patient-ID holds are replaced by whatever the
rules now say (a valid new ID ends them). A new patient ID that is not a valid Norwegian ID is
refused, as is the same value again: an ``invalid_patient_id`` hold can never be ended with the
invalid ID unchanged. A result the LIS already has is not corrected here (that is a corrected
result, OBX-11 = C, from the instrument or the LIS).
"""

from __future__ import annotations

import dataclasses
from typing import Final

from sqlalchemy import insert, update

from gateway.holds.outcome import ActionOutcome, Refusal, refused
from gateway.holds.signing import sign_off
from gateway.holds.subject import Subject, prepare
from gateway.model import HoldReason
from gateway.national_id import classify, mask
from gateway.people.roles import HoldAction
from gateway.rules import RuleContext, run_rules
from gateway.store.results import hold_row
from gateway.store.signatures import add_correction
from gateway.store.tables import holds, results
from gateway.store.writer import Tx

#: the fields a correction may change, and their stored length
FIELDS: Final = {"patient_id": 32, "specimen_id": 64}
PATIENT_REASONS: Final = frozenset({HoldReason.INVALID_PATIENT_ID, HoldReason.MISSING_PATIENT_ID})


def _shown(field: str, value: str) -> str:
    """A value as the audit log and the signature keep it: a patient ID masked."""
    return mask(value) if field == "patient_id" else value


def correct(
    tx: Tx,
    result_id: int,
    person: str,
    *,
    field: str,
    new_value: str,
    reason: str,
    context: RuleContext,
) -> ActionOutcome:
    """``person`` sets ``field`` (patient_id or specimen_id) of held ``result_id`` to
    ``new_value`` for ``reason`` (required); the rules run again on the corrected result.

    Done: queued or still_held. Refusals: no_such_result, test_data, not_held, already_sent,
    no_open_hold, unknown_person, inactive_person, wrong_role, bad_field, empty_value,
    too_long, unchanged, invalid_new_id, reason_required.
    """
    action = HoldAction.CORRECT
    subject = prepare(tx, result_id, action, person, context)
    if not isinstance(subject, Subject):
        return subject
    problem = _problem(subject, field, new_value.strip(), reason.strip())
    if problem is not None:
        return problem
    new, why = new_value.strip(), reason.strip()
    result = subject.result
    old = str(getattr(result, field))
    correction_id = add_correction(
        tx, result_id=result_id, field=field, old=old, new=new, reason=why, person=person
    )
    tx.conn.execute(
        update(results).where(results.c.id == result_id).values({field: new, "updated_at": tx.now})
    )
    tx.audit(
        actor=person,
        action="result.corrected",
        entity="result",
        entity_id=result_id,
        reason=why,
        before={field: _shown(field, old)},
        after={field: _shown(field, new), "correction": correction_id},
    )
    if field == "patient_id":
        corrected = dataclasses.replace(result, patient_id=new)
    else:
        corrected = dataclasses.replace(result, specimen_id=new)
    found = run_rules(corrected, subject.context)
    wanted = {h.reason: h for h in found if h.reason in PATIENT_REASONS}
    mine = {h.id for h in subject.ending}
    patient_holds = [h for h in subject.open_holds if h.reason in PATIENT_REASONS and h.id in mine]
    if field == "patient_id":  # every patient-ID hold spoke of the old ID: replace them all
        ending = patient_holds
        added = list(wanted.values())
    else:
        ending = [h for h in patient_holds if h.reason not in wanted]
        open_reasons = {h.reason for h in subject.open_holds}
        added = [h for reason, h in wanted.items() if reason not in open_reasons]
    if added:
        tx.conn.execute(
            insert(holds),
            [hold_row(result_id, h, tx.now) for h in added],
        )
    detail = {
        "field": field,
        "old": _shown(field, old),
        "new": _shown(field, new),
        "correction": correction_id,
        "holds_added": [h.reason for h in added],
    }
    return sign_off(tx, subject, action, comment=why, detail=detail, ending=ending)


def _problem(subject: Subject, field: str, new: str, reason: str) -> ActionOutcome | None:
    result_id, action = subject.result_id, HoldAction.CORRECT
    if field not in FIELDS:
        return refused(result_id, action, Refusal.BAD_FIELD, "held", field=field)
    if not new:
        return refused(result_id, action, Refusal.EMPTY_VALUE, "held", field=field)
    if len(new) > FIELDS[field]:
        return refused(result_id, action, Refusal.TOO_LONG, "held", limit=str(FIELDS[field]))
    if not reason:
        return refused(result_id, action, Refusal.REASON_REQUIRED, "held")
    if new == str(getattr(subject.result, field)):
        return refused(result_id, action, Refusal.UNCHANGED, "held", field=field)
    if field == "patient_id":
        context = subject.context
        check = classify(
            new,
            allow_synthetic=context.allow_synthetic_ids,
            accept_2032_rule=context.accept_2032_ids,
        )
        if not check.valid:
            return refused(
                result_id,
                action,
                Refusal.INVALID_NEW_ID,
                "held",
                kind=check.kind or "unknown",
                problem=check.code,
                **dict(check.params),
            )
    return None
