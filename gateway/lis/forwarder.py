"""The LIS forwarder: a transactional outbox drained in order over MLLP.

Queued results are packed into ORU^R01 messages (``[lis] batch_size`` results each); each
message is stored with its control ID *before* the first send, so a retry after a timeout, a
broken connection or a restart resends the same bytes under the same MSH-10. Only an ACK whose
MSA-2 equals that MSH-10 settles a message: AA acknowledges it, AE/AR rejects it (a deviation is
recorded and it is not retried blindly). Messages go out one at a time in outbox order.
The store work (what is queued, packed, sent, settled) is the outbox repository's
(``gateway.lis.outbox``); here are the packer, the delivery window and the LIS link.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, TypeVar

from drivers.mllp import MllpClient
from drivers.transports import connector_for, traced
from gateway.config import LisConfig
from gateway.errors import ForwardError, GatewayError, ProtocolError, TransportError, loggable
from gateway.lis.oru import build_oru
from gateway.lis.oru_check import validate_oru
from gateway.lis.outbox import (
    Carried,
    PendingMessage,
    enqueue,
    hold_unbuildable,
    lean,
    mark_sent,
    pending_messages,
    settle,
    unassigned_queued,
)
from gateway.store.writer import Tx, Writer

T = TypeVar("T")
log = logging.getLogger(__name__)
#: messages packed ahead of the one being sent
PACK_AHEAD = 32


_ids = random.Random(os.urandom(16))  # os.urandom per message is slow on some VMs


def new_control_id() -> str:
    """20 characters: the length MSH-10 allows in v2.5.1; random so a reset DB never reuses one."""
    return f"{_ids.getrandbits(80):020X}"


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
        # the LIS link opens like an instrument's: by URL (tcp, tcp-listen, tls, serial)
        self._connector = connector_for(lis.url, tls=lis.tls_settings)
        self._wire = logging.getLogger("trygg.wire.lis") if lis.trace else None
        self._client: MllpClient | None = None
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
            await self._connector.aclose()

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
        client = self._client or await self._connect()
        window = self._lis.window
        in_flight: dict[str, PendingMessage] = {}
        queue = deque(unsettled)
        try:
            while queue or in_flight:
                batch: list[tuple[str, bytes]] = []
                while queue and len(in_flight) < window:
                    message = queue.popleft()
                    self._track(
                        self._writer.submit(
                            functools.partial(mark_sent, pending=message._replace(message="")),
                            urgent=True,
                        )
                    )
                    in_flight[message.control_id] = message
                    batch.append((message.control_id, message.message.encode("utf-8")))
                    self.sent += 1
                await client.send(batch)
                # the client returns only ACKs naming a message in flight (others are logged)
                ack = await client.next_ack()
                settled = in_flight.pop(ack.acked_control_id)
                unsettled.remove(settled)
                self._settle(settled, ack.code, ack.text)
        except TransportError as exc:  # no ACK in time, a broken or a closed link
            raise ForwardError(f"the LIS link {self._lis.url}: {exc}") from exc

    async def _connect(self) -> MllpClient:
        try:
            async with asyncio.timeout(self._lis.ack_timeout_s):
                stream = await self._connector.connect()
        except TransportError as exc:  # it names the URL and what failed (refused, TLS ...)
            raise ForwardError(f"the LIS link: {exc}") from exc
        except TimeoutError as exc:
            raise ForwardError(f"cannot connect to the LIS at {self._lis.url}: timed out") from exc
        if self._wire is not None:
            stream = traced(stream, self._wire)
        self._client = MllpClient(stream, ack_timeout_s=self._lis.ack_timeout_s)
        self.connected = True
        return self._client

    async def _disconnect(self) -> None:
        client, self._client = self._client, None
        self.connected = False
        if client is not None:
            await client.stream.aclose()
