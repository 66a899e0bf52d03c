"""Verify and reject: a second, experienced person checks a visual reading or a manual entry
(DOMAIN rules 4 and 5).

The verifier may give their own reading (``value_read``). The same value (text compared
without case or spaces, numbers by value: "5,0" is "5") verifies it; another value is a
disagreement: the result is not released but discarded, and a deviation goes to the quality
manager, as for a rejection. The signature records the stored value, the verifier's reading
and the time between the first reading and the second, in seconds.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.holds.outcome import NOTE_DISAGREED, ActionOutcome, Refusal, refused
from gateway.holds.signing import discard, sign_off
from gateway.holds.subject import Subject, prepare, task_text
from gateway.model import Deviation
from gateway.people.roles import HoldAction
from gateway.rules import RuleContext
from gateway.store.writer import Tx

QUALITY = "Kvalitetsansvarlig"


def _normal(value: str) -> str:
    return "".join(value.split()).casefold()


def _number(value: str) -> Decimal | None:
    try:
        number = Decimal(value.replace(",", "."))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def same_reading(stored: str, read: str) -> bool:
    """Whether two readings agree: the same text (case and spaces aside) or the same number."""
    a, b = _normal(stored), _normal(read)
    if a == b:
        return True
    x, y = _number(a), _number(b)
    return x is not None and y is not None and x == y


def _detail(subject: Subject, value_read: str | None) -> dict[str, Any]:
    result = subject.result
    return {
        "value": result.value,
        "unit": result.unit,
        "value_read": value_read,
        "method": result.method.value,
        "performer": subject.performer or "",
        "first_reading_at": subject.performed_at.isoformat(),
        "interval_s": int((subject.context.now - subject.performed_at).total_seconds())
        if subject.context.now is not None
        else None,
    }


def verify(
    tx: Tx,
    result_id: int,
    person: str,
    *,
    context: RuleContext,
    value_read: str | None = None,
    comment: str = "",
) -> ActionOutcome:
    """``person`` verifies ``result_id``; with ``value_read`` their own reading is compared.

    Done: queued (or still_held when other holds remain), or discarded on a disagreement (a
    deviation, note ``disagreed``). Refusals: no_such_result, test_data, not_held,
    no_open_hold, unknown_person, inactive_person, wrong_role, same_person, not_certified.
    """
    subject = prepare(tx, result_id, HoldAction.VERIFY, person, context)
    if not isinstance(subject, Subject):
        return subject
    read = value_read.strip() if value_read is not None else None
    if read == "":
        read = None
    detail = _detail(subject, read)
    if read is None or same_reading(subject.result.value, read):
        return sign_off(
            tx,
            subject,
            HoldAction.VERIFY,
            comment=comment.strip(),
            detail={**detail, "agreed": True},
        )
    result = subject.result
    deviation = Deviation(
        kind="verification_disagreement",
        summary=(
            f"Result #{result_id} ({result.test_code} on {result.instrument_id}): the verifier "
            "read another value than the first reading; the result was discarded"
        ),
        detail=(
            f"first reading {result.value!r} by {subject.performer or 'unknown'}, "
            f"second reading {read!r} by {person}; task {task_text(subject.work)}"
            + (f"; comment: {comment.strip()}" if comment.strip() else "")
        ),
        responsible_function=QUALITY,
        instrument_id=result.instrument_id,
        result_id=result_id,
    )
    return discard(
        tx,
        subject,
        HoldAction.VERIFY,
        comment=comment.strip(),
        detail={**detail, "agreed": False},
        deviation=deviation,
        notes=(NOTE_DISAGREED,),
    )


def reject(
    tx: Tx, result_id: int, person: str, *, comment: str, context: RuleContext
) -> ActionOutcome:
    """``person`` rejects ``result_id`` with ``comment`` (required): discarded, a deviation.

    Refusals: no_such_result, test_data, not_held, no_open_hold, unknown_person,
    inactive_person, wrong_role, same_person, not_certified, comment_required.
    """
    subject = prepare(tx, result_id, HoldAction.REJECT, person, context)
    if not isinstance(subject, Subject):
        return subject
    if not comment.strip():
        return refused(result_id, HoldAction.REJECT, Refusal.COMMENT_REQUIRED, "held")
    result = subject.result
    deviation = Deviation(
        kind="verification_rejected",
        summary=(
            f"Result #{result_id} ({result.test_code} on {result.instrument_id}) was rejected "
            "by the verifier and discarded"
        ),
        detail=f"rejected by {person}: {comment.strip()}; task {task_text(subject.work)}",
        responsible_function=QUALITY,
        instrument_id=result.instrument_id,
        result_id=result_id,
    )
    return discard(
        tx,
        subject,
        HoldAction.REJECT,
        comment=comment.strip(),
        detail=_detail(subject, None),
        deviation=deviation,
    )
