"""The LIS's order connection: HL7 order messages over MLLP, each stored before its ACK.

The LIS learns the fate of every message from the ACK: AA when its orders are on the
worklist, AE with the reason (and the field, in ERR) when the message was refused; a refused
message's bytes are kept in quarantine for the quality manager, and the worklist is unchanged.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime

from drivers.protocols.hl7.ack import build_ack
from drivers.protocols.hl7.mllp import MllpDecoder, frame
from drivers.session import Sink
from drivers.transports import ByteStream
from gateway.errors import RemoteProtocolError
from gateway.orders.hl7_orders import parse_orders
from gateway.orders.store import OrdersOutcome, store_order_message
from gateway.store.writer import Writer

log = logging.getLogger(__name__)

#: HL7 table 0357: 100 segment sequence error, 101 required field missing, 102 data type
#: error, 200 unsupported message type; the receiver names the field, the code is generic.
_ERROR_CODE = "207"  # application internal error: the message was read but refused


class OrderReceiver:
    """A session driver: reads MLLP frames from the LIS, stores each order message, ACKs it."""

    def __init__(self, writer: Writer, *, max_message_bytes: int = 1 << 20) -> None:
        self._writer = writer
        self._max = max_message_bytes
        self._acks = 0

    async def serve(self, stream: ByteStream, sink: Sink) -> None:
        decoder = MllpDecoder(max_size=self._max)
        while True:
            data = await stream.read()
            if not data:
                return
            try:
                decoder.receive_data(data)
                while (payload := decoder.next_message()) is not None:
                    await self._handle(payload, stream)
            except RemoteProtocolError as exc:
                # the framing itself is broken (an endless block): keep the bytes, hang up
                await self._writer.write(
                    functools.partial(
                        store_order_message,
                        raw=exc.data or data,
                        received_at=datetime.now(UTC),
                        requests=None,
                        error=exc.without_data(),
                        error_field=exc.field or "",
                    )
                )
                raise

    async def _handle(self, payload: bytes, stream: ByteStream) -> None:
        now = datetime.now(UTC)
        error_field = ""
        try:
            parsed = parse_orders(payload)
        except RemoteProtocolError as exc:
            error_field = exc.field or ""
            job = functools.partial(
                store_order_message,
                raw=payload,
                received_at=now,
                requests=None,
                error=exc.without_data(),
                error_field=error_field,
            )
        else:
            job = functools.partial(
                store_order_message,
                raw=payload,
                received_at=now,
                requests=parsed.requests,
                control_id=parsed.control_id,
            )
        outcome: OrdersOutcome = await self._writer.write(job)
        log.info(
            "LIS orders: %s (%d placed, %d cancelled, %d unchanged)",
            "refused, kept in quarantine" if outcome.quarantined else "stored",
            outcome.placed,
            outcome.cancelled,
            outcome.unchanged,
        )
        self._acks += 1
        ack = build_ack(
            payload,
            "AE" if outcome.quarantined else "AA",
            control_id=f"O{self._acks:09d}",
            now=now,
            text=outcome.error[:80],
            error_code=_ERROR_CODE if outcome.quarantined else "",
            error_location=error_field,
        )
        await stream.write(frame(ack))
