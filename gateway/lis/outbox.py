"""The outbox repository: the LIS forwarder's store reads and writes (queued results, messages).

Every function takes the transaction (``Tx``) it works in. The writes run in the gateway's
writer for every LIS message, so they stay lean: ids only (``CarriedResult``), statements
built once, the driver's cursor (``bulk``) as on the ingest path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from sqlalchemy import bindparam, exists, func, insert, select

from gateway import deviations, lifecycle
from gateway.lis.oru import OutboundResult
from gateway.model import Deviation, HoldReason, State
from gateway.people.roles import release_role
from gateway.store import bulk
from gateway.store.results import from_row
from gateway.store.tables import holds, outbox, outbox_items, results
from gateway.store.writer import Tx
from gateway.texts import params_json

ACTOR = "system:lis-forwarder"


class PendingMessage(NamedTuple):
    """A packed message waiting for the LIS (a NamedTuple: it crosses the worker's pipe often)."""

    outbox_id: int
    control_id: str
    message: str
    state: str
    result_ids: tuple[int, ...]


def _in_flight() -> Any:
    """EXISTS: the result is carried by an outbox message still pending or sent."""
    return exists(
        select(outbox_items.c.result_id)
        .join(outbox, outbox.c.id == outbox_items.c.outbox_id)
        .where(
            outbox_items.c.result_id == results.c.id,
            outbox.c.state.in_(("pending", "sent")),
        )
    )


# Statements built once: building a Core statement per call costs more than running it.
_UNASSIGNED_QUEUED = (
    select(results)
    .where(results.c.state == State.QUEUED.value, ~_in_flight())
    .order_by(results.c.id)
    .limit(bindparam("limit"))
)
# The store jobs below run in the gateway's writer for every LIS message: they use the
# driver's cursor (``bulk.fetch``), as the ingest path does.
_INSERT_OUTBOX = (
    "INSERT INTO outbox (control_id, message, n_results, state, created_at, attempts,"
    " ack_code, ack_text) VALUES (?, ?, ?, 'pending', ?, 0, '', '') RETURNING id"
)
_FIRST_SEND_SQL = (
    "UPDATE outbox SET state = 'sent', attempts = attempts + 1, first_sent_at = ?,"
    " last_attempt_at = ? WHERE id = ? AND state = 'pending'"
)
_RESEND_SQL = "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ? WHERE id = ?"
_SETTLE_SQL = (
    "UPDATE outbox SET state = ?, acked_at = ?, ack_code = ?, ack_text = ?"
    " WHERE id = ? AND state IN ('pending', 'sent')"
)


_STILL_QUEUED = select(func.count()).where(
    results.c.id.in_(bindparam("ids", expanding=True)),
    results.c.state == State.QUEUED.value,
    ~_in_flight(),
)


def _still_queued(tx: Tx, ids: Sequence[int]) -> int:
    """How many of ``ids`` are queued and carried by no waiting message."""
    return int(tx.conn.execute(_STILL_QUEUED, {"ids": list(ids)}).scalar_one())


_PENDING = (
    select(outbox.c.id, outbox.c.control_id, outbox.c.message, outbox.c.state)
    .where(outbox.c.state.in_(("pending", "sent")))
    .order_by(outbox.c.id)
    .limit(bindparam("limit"))
)
_PENDING_ITEMS = (
    select(outbox_items.c.outbox_id, outbox_items.c.result_id)
    .where(outbox_items.c.outbox_id.in_(bindparam("ids", expanding=True)))
    .order_by(outbox_items.c.result_id)
)


def unassigned_queued(tx: Tx, limit: int) -> list[OutboundResult]:
    """Queued results that no pending or sent outbox message carries yet, oldest first."""
    rows = tx.conn.execute(_UNASSIGNED_QUEUED, {"limit": limit}).all()
    return [
        OutboundResult(
            result_id=row.id,
            result=from_row(row),
            corrected=row.result_status == "C" or row.correction_of is not None,
        )
        for row in rows
    ]


class Carried(Protocol):
    """What the outbox needs of a result a message carries (``OutboundResult`` has it)."""

    @property
    def result_id(self) -> int: ...

    @property
    def corrected(self) -> bool: ...


class CarriedResult(NamedTuple):
    """The lean form of ``OutboundResult`` for the store jobs (it crosses the worker's pipe)."""

    result_id: int
    corrected: bool


def lean(batch: Sequence[Carried]) -> list[CarriedResult]:
    return [CarriedResult(r.result_id, r.corrected) for r in batch]


def enqueue(tx: Tx, built: Sequence[tuple[str, str, Sequence[Carried]]]) -> int:
    """Store built messages in the outbox; each result is guarded to be queued and carried by
    no other waiting message (so a second packer can never give it a second control ID)."""
    stored = 0
    for control_id, message, batch in built:
        ids = [r.result_id for r in batch]
        if _still_queued(tx, ids) != len(ids):
            continue  # something moved them meanwhile; they are picked up again next round
        outbox_id = bulk.fetch(
            tx.conn,
            _INSERT_OUTBOX,
            (control_id, message, len(ids), bulk.db_time(tx.conn, tx.now)),
        )[0][0]
        bulk.insert_rows(
            tx.conn,
            outbox_items,
            [
                {"outbox_id": outbox_id, "result_id": r.result_id, "corrected": r.corrected}
                for r in batch
            ],
        )
        tx.audit(
            actor=ACTOR,
            action="outbox.enqueued",
            entity="outbox",
            entity_id=outbox_id,
            reason=f"ORU^R01 {control_id} with {len(ids)} result(s)",
            after={"control_id": control_id, "results": ids},
        )
        stored += 1
    return stored


def hold_unbuildable(tx: Tx, batch: Sequence[Carried], error: str, field: str = "") -> None:
    """A message we cannot build is our bug: hold its results and record a deviation.

    The hold names the field at fault; ``error`` (technical, English) goes with it as detail.
    """
    ids = [r.result_id for r in batch]
    lifecycle.move(tx, ids, State.QUEUED, State.HELD, actor=ACTOR, reason=error)
    params = params_json((("field", field), ("error", error)))
    tx.conn.execute(
        insert(holds),
        [
            {
                "result_id": i,
                "reason": HoldReason.LIS_MESSAGE_INVALID.value,
                "params": params,
                "release_role": release_role(HoldReason.LIS_MESSAGE_INVALID),
                "created_at": tx.now,
            }
            for i in ids
        ],
    )
    deviations.record(
        tx,
        Deviation(
            kind="lis_message_invalid",
            summary="A LIS message could not be built",
            detail=error,
            responsible_function="Dataansvarlig",
        ),
        actor=ACTOR,
    )


def pending_messages(tx: Tx, limit: int) -> list[PendingMessage]:
    rows = tx.conn.execute(_PENDING, {"limit": limit}).all()
    if not rows:
        return []
    items = tx.conn.execute(_PENDING_ITEMS, {"ids": [r.id for r in rows]}).all()
    by_outbox: dict[int, list[int]] = {}
    for item in items:
        by_outbox.setdefault(item.outbox_id, []).append(item.result_id)
    return [
        PendingMessage(r.id, r.control_id, r.message, r.state, tuple(by_outbox.get(r.id, ())))
        for r in rows
    ]


def mark_sent(tx: Tx, pending: PendingMessage) -> None:
    now = bulk.db_time(tx.conn, tx.now)
    first = bulk.execute(tx.conn, _FIRST_SEND_SQL, (now, now, pending.outbox_id))
    if first:
        lifecycle.move(
            tx,
            pending.result_ids,
            State.QUEUED,
            State.SENT,
            actor=ACTOR,
            extra={"control_id": pending.control_id},
        )
    else:
        bulk.execute(tx.conn, _RESEND_SQL, (now, pending.outbox_id))
        tx.audit(
            actor=ACTOR,
            action="outbox.resent",
            entity="outbox",
            entity_id=pending.outbox_id,
            reason=f"resent under the same control ID {pending.control_id}",
        )


def settle(tx: Tx, pending: PendingMessage, code: str, text: str) -> None:
    """Apply the LIS answer: AA acknowledges, AE/AR rejects and records a deviation."""
    accepted = code in ("AA", "CA")
    new_state = "acknowledged" if accepted else "rejected"
    changed = bulk.execute(
        tx.conn,
        _SETTLE_SQL,
        (new_state, bulk.db_time(tx.conn, tx.now), code, text, pending.outbox_id),
    )
    if not changed:
        return  # already settled (a repeated ACK for a message sent again): nothing to do
    tx.audit(
        actor=ACTOR,
        action=f"outbox.{new_state}",
        entity="outbox",
        entity_id=pending.outbox_id,
        reason=f"LIS answered {code} {text}".strip(),
        before={"state": "sent"},
        after={"state": new_state, "ack_code": code},
    )
    lifecycle.move(
        tx,
        pending.result_ids,
        State.SENT,
        State.ACKNOWLEDGED if accepted else State.REJECTED,
        actor="lis",
        reason=f"ACK {code} for {pending.control_id}" + (f": {text}" if text else ""),
        extra={"control_id": pending.control_id},
    )
    if not accepted:
        deviations.record(
            tx,
            Deviation(
                kind="lis_rejected",
                summary=f"The LIS rejected message {pending.control_id} ({code})",
                detail=text,
                responsible_function="Dataansvarlig",
                outbox_id=pending.outbox_id,
            ),
            actor=ACTOR,
        )
