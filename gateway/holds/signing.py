"""The second half of every hold action: sign, end the holds, and move the result on.

``sign_off`` records the signature and an audit row, closes the holds the signer ends, and
when no open hold remains moves the result held -> released -> queued (to the outbox).
``discard`` does the same for a rejection or a disagreement, but moves it held -> discarded
(its other holds are closed with it: a discarded result waits for nobody) and records a
deviation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select, update

from gateway import deviations, lifecycle
from gateway.holds.outcome import ActionOutcome, Done
from gateway.holds.subject import OpenHold, Subject
from gateway.model import Deviation, State
from gateway.people.roles import HoldAction
from gateway.store.signatures import add_signature
from gateway.store.tables import holds
from gateway.store.writer import Tx


def close_holds(tx: Tx, ended: Iterable[OpenHold], *, by: str, note: str) -> None:
    """Mark holds released now, by ``by``, with ``note`` (only those still open)."""
    ids = [h.id for h in ended]
    if ids:
        tx.conn.execute(
            update(holds)
            .where(holds.c.id.in_(ids), holds.c.released_at.is_(None))
            .values(released_at=tx.now, released_by=by, release_note=note)
        )


def open_holds(tx: Tx, result_id: int) -> tuple[OpenHold, ...]:
    return tuple(
        OpenHold(int(h.id), str(h.reason))
        for h in tx.conn.execute(
            select(holds.c.id, holds.c.reason)
            .where(holds.c.result_id == result_id, holds.c.released_at.is_(None))
            .order_by(holds.c.id)
        )
    )


def _reasons(found: Sequence[OpenHold]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(h.reason for h in found))


def sign_off(
    tx: Tx,
    subject: Subject,
    action: HoldAction,
    *,
    comment: str,
    detail: Mapping[str, Any],
    ending: Sequence[OpenHold] | None = None,
    notes: tuple[str, ...] = (),
    params: Mapping[str, str] | None = None,
) -> ActionOutcome:
    """Sign ``action``, end ``ending`` (default: the subject's), queue the result when no hold
    remains. ``detail`` is what was signed (stored with the signature)."""
    ended = tuple(subject.ending if ending is None else ending)
    result_id = subject.result_id
    instrument = subject.result.instrument_id
    signature = add_signature(
        tx,
        person=subject.signer,
        meaning=action.value,
        result_id=result_id,
        comment=comment,
        detail={**detail, "holds": list(_reasons(ended))},
    )
    close_holds(tx, ended, by=subject.signer, note=comment)
    remaining = _reasons(open_holds(tx, result_id))
    tx.audit(
        actor=subject.signer,
        action=f"result.{action.value}",
        entity="result",
        entity_id=result_id,
        reason=comment,
        after={"signature": signature, "ended": list(_reasons(ended)), "open": list(remaining)},
    )
    if remaining:
        return ActionOutcome(
            result_id,
            action,
            True,
            Done.STILL_HELD.value,
            (*(params or {}).items(), ("holds", ";".join(remaining))),
            State.HELD.value,
            signature_id=signature,
            ended=_reasons(ended),
            remaining=remaining,
            notes=notes,
        )
    why = f"{action.value} signed by {subject.signer}"
    lifecycle.move(
        tx,
        [result_id],
        State.HELD,
        State.RELEASED,
        actor=subject.signer,
        reason=f"{why}: {comment}" if comment else why,
        instrument=instrument,
        extra={"holds": list(_reasons(ended)), "signature": signature},
    )
    lifecycle.move(
        tx, [result_id], State.RELEASED, State.QUEUED, actor=subject.signer, instrument=instrument
    )
    return ActionOutcome(
        result_id,
        action,
        True,
        Done.QUEUED.value,
        tuple((params or {}).items()),
        State.QUEUED.value,
        signature_id=signature,
        ended=_reasons(ended),
        notes=notes,
    )


def discard(
    tx: Tx,
    subject: Subject,
    action: HoldAction,
    *,
    comment: str,
    detail: Mapping[str, Any],
    deviation: Deviation,
    notes: tuple[str, ...] = (),
) -> ActionOutcome:
    """Sign ``action``, close every open hold, move the result to ``discarded``, and record
    ``deviation``."""
    result_id = subject.result_id
    instrument = subject.result.instrument_id
    signature = add_signature(
        tx,
        person=subject.signer,
        meaning=action.value,
        result_id=result_id,
        comment=comment,
        detail={**detail, "holds": list(_reasons(subject.ending)), "discarded": True},
    )
    close_holds(tx, subject.ending, by=subject.signer, note=comment)
    close_holds(tx, subject.remaining, by=subject.signer, note=f"result discarded ({action.value})")
    deviation_id = deviations.record(tx, deviation, actor=subject.signer)
    tx.audit(
        actor=subject.signer,
        action=f"result.{action.value}",
        entity="result",
        entity_id=result_id,
        reason=comment,
        after={"signature": signature, "deviation": deviation_id, "discarded": True},
    )
    lifecycle.move(
        tx,
        [result_id],
        State.HELD,
        State.DISCARDED,
        actor=subject.signer,
        reason=f"{action.value} signed by {subject.signer}: {comment}".rstrip(": "),
        instrument=instrument,
        extra={"signature": signature, "deviation": deviation_id},
    )
    return ActionOutcome(
        result_id,
        action,
        True,
        Done.DISCARDED.value,
        (("deviation", str(deviation_id)), ("responsible", deviation.responsible_function)),
        State.DISCARDED.value,
        signature_id=signature,
        deviation_id=deviation_id,
        ended=_reasons(subject.open_holds),
        notes=notes,
    )
