"""The LIS forwarder: a transactional outbox drained in order over MLLP.

Queued results are packed into ORU^R01 messages (``[lis] batch_size`` results each); each
message is stored with its control ID *before* the first send, so a retry after a timeout, a
broken connection or a restart resends the same bytes under the same MSH-10. Only an ACK whose
MSA-2 equals that MSH-10 settles a message: AA acknowledges it, AE/AR rejects it (a deviation is
recorded and it is not retried blindly). Messages go out one at a time in outbox order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, TypeVar
from urllib.parse import urlsplit

import hl7.mllp
from sqlalchemy import bindparam, exists, func, insert, select

from drivers.model import Method
from drivers.protocols.hl7.ack import parse_ack
from gateway import deviations, lifecycle
from gateway.config import LisConfig
from gateway.errors import ForwardError, GatewayError, ProtocolError, loggable
from gateway.lis.oru import OutboundResult, build_oru, validate_oru
from gateway.model import Deviation, HoldReason, Result, State
from gateway.store import bulk
from gateway.store.tables import holds, outbox, outbox_items, results
from gateway.store.writer import Tx, Writer
from gateway.texts import params_json

T = TypeVar("T")
log = logging.getLogger(__name__)
ACTOR = "system:lis-forwarder"
#: messages packed ahead of the one being sent
PACK_AHEAD = 32


class PendingMessage(NamedTuple):
    """A packed message waiting for the LIS (a NamedTuple: it crosses the worker's pipe often)."""

    outbox_id: int
    control_id: str
    message: str
    state: str
    result_ids: tuple[int, ...]


def row_to_result(row: Any) -> Result:
    return Result(
        id=row.id,
        instrument_id=row.instrument_id,
        test_code=row.test_code,
        value=row.value,
        value_type=row.value_type,
        unit=row.unit,
        reference_range=row.reference_range,
        abnormal_flags=tuple(f for f in row.abnormal_flags.split("~") if f),
        method=Method(row.method),
        performed_at=row.performed_at,
        operator_id=row.operator_id,
        specimen_id=row.specimen_id,
        patient_id=row.patient_id,
        result_status=row.result_status,
        nlk_code=row.nlk_code,
        test_name=row.test_name,
        comment=row.comment,
        instrument_serial=row.instrument_serial,
        state=State(row.state),
    )


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
            result=row_to_result(row),
            corrected=row.result_status == "C" or row.correction_of is not None,
        )
        for row in rows
    ]


_ids = random.Random(os.urandom(16))  # os.urandom per message is slow on some VMs


def new_control_id() -> str:
    """20 characters: the length MSH-10 allows in v2.5.1; random so a reset DB never reuses one."""
    return f"{_ids.getrandbits(80):020X}"


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
                "release_role": "dataansvarlig",
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


class Forwarder:
    """Owns the LIS connection; ``run`` drains the outbox until cancelled."""

    def __init__(
        self,
        writer: Writer,
        lis: LisConfig,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        poll_s: float = 1.0,
    ) -> None:
        self._writer = writer
        self._lis = lis
        self._clock = clock
        self._poll_s = poll_s
        self._wake = asyncio.Event()  # results were queued: the packer looks again
        self._packed = asyncio.Event()  # messages were packed: the sender looks again
        self._room = asyncio.Event()  # the sender caught up: the packer may pack more
        self._unsent = 0  # packed messages the sender has not sent yet (as far as we know)
        parts = urlsplit(lis.url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 2575
        self._reader: hl7.mllp.HL7StreamReader | None = None
        self._stream: hl7.mllp.HL7StreamWriter | None = None
        self._unsettled: list[Future[Any]] = []
        self.connected = False
        self.last_error = ""
        self.sent = 0
        self.acknowledged = 0
        self.rejected = 0
        self.retries = 0

    def wake(self) -> None:
        """Tell the forwarder that results were queued (called from the ingest path)."""
        self._wake.set()

    async def run(self) -> None:
        """Pack results into messages in one task, send them in order in another.

        The packer keeps at most ``2 * PACK_AHEAD`` messages packed but not yet sent, so a long
        LIS outage leaves results queued (cheap) rather than packed, while under a steady
        stream the sender always finds the next messages ready: reading, building and storing
        the next messages overlaps sending the current ones.
        """
        packer = asyncio.create_task(self._pack_loop(), name="lis-packer")
        try:
            while True:
                await self._settle_tracked()
                pending = await self._read(lambda tx: pending_messages(tx, 2 * PACK_AHEAD))
                if not pending:
                    self._packed.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._poll_s):
                            await self._packed.wait()
                    continue
                self._unsent = sum(1 for m in pending if m.state == "pending")
                self._room.set()
                await self._deliver(pending)
                self._unsent = 0
                self._room.set()
        finally:
            packer.cancel()
            with contextlib.suppress(BaseException):
                await packer
            await self._disconnect()

    async def _pack_loop(self) -> None:
        """Pack while queued results wait and the sender is not too far behind."""
        while True:
            if self._unsent >= 2 * PACK_AHEAD:
                self._room.clear()
                await self._room.wait()
                continue
            self._wake.clear()
            packed = await self._fill_outbox(PACK_AHEAD)
            if packed:
                self._unsent += packed
                self._packed.set()
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_s):
                    await self._wake.wait()

    async def _fill_outbox(self, max_messages: int) -> int:
        """Pack up to ``max_messages`` messages from queued results; returns how many."""
        size = self._lis.batch_size
        queued = await self._read(lambda tx: unassigned_queued(tx, size * max_messages))
        if not queued:
            return 0
        built: list[tuple[str, str, Sequence[Carried]]] = []
        for start in range(0, len(queued), size):
            batch = queued[start : start + size]
            control_id = new_control_id()
            try:
                text = build_oru(batch, control_id=control_id, now=self._clock(), lis=self._lis)
                if self._lis.validate_messages == "full":
                    await asyncio.to_thread(validate_oru, text)
                elif self._lis.validate_messages == "fast":
                    validate_oru(text, with_hl7apy=False)
            except GatewayError as exc:
                error = str(exc)
                log.error("LIS message could not be built: %s", loggable(exc))
                field = exc.field or "" if isinstance(exc, ProtocolError) else ""
                await self._writer.write(
                    functools.partial(
                        hold_unbuildable, batch=lean(batch), error=error, field=field
                    ),
                    urgent=True,
                )
                continue
            built.append((control_id, text, lean(batch)))
        if not built:
            return 0
        return int(await self._writer.write(functools.partial(enqueue, built=built), urgent=True))

    async def _deliver(self, messages: Sequence[PendingMessage]) -> None:
        """Deliver ``messages`` in order; after a failure, back off and resend the unsettled
        ones, in order, under their own control IDs."""
        unsettled = list(messages)
        delay = self._lis.retry_initial_s
        while unsettled:
            try:
                await self._exchange(unsettled)
            except (ForwardError, ProtocolError, OSError, TimeoutError) as exc:
                self.last_error = loggable(exc)
                self.retries += 1
                log.warning(
                    "LIS delivery of %s failed (%s); retry in %.1f s",
                    unsettled[0].control_id,
                    self.last_error,
                    delay,
                )
                await self._disconnect()
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self._lis.retry_max_s)
                continue
            self.last_error = ""

    def _settle(self, message: PendingMessage, code: str, text: str) -> None:
        self._track(
            self._writer.submit(
                functools.partial(
                    settle, pending=message._replace(message=""), code=code, text=text
                ),
                urgent=True,
            )
        )
        if code in ("AA", "CA"):
            self.acknowledged += 1
        else:
            self.rejected += 1

    async def _read(self, query: Callable[[Tx], T]) -> T:
        """Reads go on their own connection, not through the writer's queue (WAL readers do
        not wait for writers); ``_settle_tracked`` first makes our own writes visible."""

        def run() -> T:
            with self._writer.engine.connect() as conn:
                return query(Tx(conn, self._clock()))

        return await asyncio.to_thread(run)

    async def _settle_tracked(self) -> None:
        """Wait for the bookkeeping writes we did not wait for, so reads see them."""
        pending, self._unsettled = self._unsettled, []
        for future in pending:
            await asyncio.wrap_future(future)  # raises if the write failed: stop loudly

    def _track(self, future: Future[Any]) -> None:
        """Keep a store write we do not wait for now; ``_settle_tracked`` waits for it."""
        self._unsettled.append(future)

    async def _exchange(self, unsettled: list[PendingMessage]) -> None:
        """Send with up to ``[lis] window`` messages awaiting their ACK; settle each one whose
        MSA-2 names it, removing it from ``unsettled``. Returns when all are settled; raises on
        a timeout or a broken connection, leaving the rest in ``unsettled``."""
        if self._stream is None or self._reader is None:
            await self._connect()
        assert self._stream is not None and self._reader is not None
        loop = asyncio.get_running_loop()
        in_flight: dict[str, tuple[PendingMessage, float]] = {}
        queue = list(unsettled)
        while queue or in_flight:
            while queue and len(in_flight) < self._lis.window:
                message = queue.pop(0)
                self._track(
                    self._writer.submit(
                        functools.partial(mark_sent, pending=message._replace(message="")),
                        urgent=True,
                    )
                )
                self._stream.writeblock(message.message.encode("utf-8"))
                in_flight[message.control_id] = (message, loop.time() + self._lis.ack_timeout_s)
                self.sent += 1
            await self._stream.drain()
            oldest = min(deadline for _, deadline in in_flight.values())
            remaining = oldest - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no ACK within {self._lis.ack_timeout_s} s")
            try:
                async with asyncio.timeout(remaining):
                    block = await self._reader.readblock()
            except (asyncio.IncompleteReadError, ValueError, hl7.mllp.InvalidBlockError) as exc:
                raise ForwardError(f"LIS connection broke or sent bad framing: {exc}") from exc
            ack = parse_ack(block)
            entry = in_flight.pop(ack.acked_control_id, None)
            if entry is None:
                log.warning(
                    "ignoring an ACK for %s: no such message is waiting", ack.acked_control_id
                )
                continue
            unsettled.remove(entry[0])
            self._settle(entry[0], ack.code, ack.text)

    async def _connect(self) -> None:
        try:
            async with asyncio.timeout(self._lis.ack_timeout_s):
                self._reader, self._stream = await hl7.mllp.open_hl7_connection(
                    self._host, self._port, encoding="utf-8"
                )
        except (OSError, TimeoutError) as exc:
            raise ForwardError(f"cannot connect to the LIS at {self._lis.url}: {exc}") from exc
        self.connected = True

    async def _disconnect(self) -> None:
        stream, self._stream, self._reader = self._stream, None, None
        self.connected = False
        if stream is not None:
            stream.close()
            with contextlib.suppress(Exception):
                await stream.wait_closed()
