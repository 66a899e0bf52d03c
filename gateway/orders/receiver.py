"""The LIS's order connection: HL7 order messages over MLLP, each stored before its ACK.

The LIS learns the fate of every message from the ACK: AA when its orders are on the
worklist, AE with the reason (and the field, in ERR) when the message was refused; a refused
message's bytes are kept in quarantine for the quality manager, and the worklist is unchanged.

Orders marked test or debugging data (MSH-11 not P: a LIS test system pointed at this
gateway) never reach the worklist, where an analyser would run them on real specimens: they
are kept in quarantine (reason ``test_message``, the processing-ID rule's) and answered AR with
ERR 202 "unsupported processing id" at MSH-11, as HL7 2.9.2 has a receiver answer a processing
ID it does not serve. Unlike an analyser, the LIS can tell its people why.

While the store is failed (``gateway.store.health``) nothing is written: every message is
answered AR with ERR 207 (an application error, not the message's fault: the LIS keeps it
and sends it again), as the analysers' ports refuse theirs; a write that fails says the same.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from drivers.mllp import serve_mllp
from drivers.ports import Sink
from drivers.protocols.hl7.ack import build_ack
from drivers.protocols.hl7.orders import ParsedOrders, parse_orders
from drivers.transports import ByteStream
from gateway.errors import RemoteProtocolError, StoreError
from gateway.orders.store import OrdersOutcome, store_order_message
from gateway.rules.processing_id import is_production, normalised, quarantine_error
from gateway.store.writer import Writer

log = logging.getLogger(__name__)

#: HL7 table 0357: 100 segment sequence error, 101 required field missing, 102 data type
#: error, 200 unsupported message type; the receiver names the field, the code is generic.
_ERROR_CODE = "207"  # application internal error: the message was read but refused
_PROCESSING_ID_ERROR = "202"  # unsupported processing id
_PROCESSING_FIELD = "MSH-11"


class OrderReceiver:
    """A session driver: reads MLLP frames from the LIS, stores each order message, ACKs it."""

    def __init__(
        self,
        writer: Writer,
        *,
        max_message_bytes: int = 1 << 20,
        accepting: Callable[[], bool] = lambda: True,
    ) -> None:
        self._writer = writer
        self._max = max_message_bytes
        self._acks = 0
        #: whether the store takes writes now (the gateway's store health)
        self._accepting = accepting

    async def serve(self, stream: ByteStream, sink: Sink) -> None:
        async def keep_broken(raw: bytes, exc: RemoteProtocolError) -> None:
            if not self._accepting():
                return  # no ACK was sent for it: the LIS sends it again
            try:
                await self._store(raw, datetime.now(UTC), None, exc)
            except StoreError:
                log.error("LIS orders: a broken frame could not be kept: the store failed")

        await serve_mllp(stream, self._handle, keep_broken, max_size=self._max)

    async def _store(
        self,
        raw: bytes,
        received_at: datetime,
        parsed: ParsedOrders | None,
        error: RemoteProtocolError | None,
    ) -> OrdersOutcome:
        """Store the message: its orders when it was read, else its bytes in quarantine."""
        job = functools.partial(
            store_order_message,
            raw=raw,
            received_at=received_at,
            requests=None if parsed is None else parsed.requests,
            control_id="" if parsed is None else parsed.control_id,
            error="" if error is None else error.without_data(),
            error_field="" if error is None else error.field or "",
        )
        return await self._writer.write(job)

    async def _handle(self, payload: bytes) -> bytes:
        """Store the message's orders (or its bytes in quarantine); return the ACK saying so."""
        now = datetime.now(UTC)
        if not self._accepting():
            return self._not_stored(payload, now)
        parsed: ParsedOrders | None = None
        error: RemoteProtocolError | None = None
        try:
            parsed = parse_orders(payload)
        except RemoteProtocolError as exc:
            error = exc
        test = parsed is not None and not is_production(parsed.processing_id)
        if parsed is not None and test:
            text = quarantine_error(
                _PROCESSING_FIELD,
                normalised(parsed.processing_id),
                fate="not placed on the worklist",
            )
            error = RemoteProtocolError(text, field=_PROCESSING_FIELD)
            parsed = None
        try:
            outcome = await self._store(payload, now, parsed, error)
        except StoreError:
            return self._not_stored(payload, now)
        log.info(
            "LIS orders: %s (%d placed, %d cancelled, %d unchanged)",
            "refused, kept in quarantine" if outcome.quarantined else "stored",
            outcome.placed,
            outcome.cancelled,
            outcome.unchanged,
        )
        self._acks += 1
        if not outcome.quarantined:
            code, error_code = "AA", ""
        elif test:
            code, error_code = "AR", _PROCESSING_ID_ERROR
        else:
            code, error_code = "AE", _ERROR_CODE
        return build_ack(
            payload,
            code,
            control_id=f"O{self._acks:09d}",
            now=now,
            text=outcome.error[:80],
            error_code=error_code,
            error_location="" if error is None else error.field or "",
        )

    def _not_stored(self, payload: bytes, now: datetime) -> bytes:
        """AR/207: the message was not stored (the store is failed); the LIS sends it again."""
        log.error("LIS orders: not stored, answered AR: the store is failed")
        self._acks += 1
        return build_ack(
            payload,
            "AR",
            control_id=f"O{self._acks:09d}",
            now=now,
            text="not stored: the gateway's store is failed; send it again later",
            error_code=_ERROR_CODE,
        )
