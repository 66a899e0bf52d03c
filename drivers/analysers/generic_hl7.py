"""Generic HL7 v2 result sender over MLLP (ORU^R01 and friends), gateway in the receiving role.

Many bench analysers and middleware (Mindray BS/BC series, Abbott Architect, Stago, GeneXpert)
push results as HL7 v2 over MLLP. Each message is stored durably before the ACK goes back: AA
when stored, AE when it could not be decoded (the raw bytes are kept in quarantine).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from drivers.analysers.profiles.hl7_generic import parse_results
from drivers.errors import RemoteProtocolError
from drivers.model import InboundMessage
from drivers.ports import Sink
from drivers.protocols.hl7.ack import build_ack
from drivers.protocols.hl7.mllp import MllpDecoder, frame
from drivers.transports import ByteStream

PROTOCOL = "hl7v2-mllp"


def decode(instrument_id: str, raw: bytes, received_at: datetime) -> InboundMessage:
    """Turn one MLLP payload into an inbound message (or a quarantine-bound one)."""
    try:
        parsed = parse_results(raw, instrument_id)
    except RemoteProtocolError as exc:
        return InboundMessage(
            instrument_id, PROTOCOL, raw, received_at, error=str(exc), error_field=exc.field
        )
    return InboundMessage(
        instrument_id,
        PROTOCOL,
        raw,
        received_at,
        observations=parsed.observations,
        control_id=parsed.control_id,
    )


async def serve_mllp(
    stream: ByteStream,
    max_message_bytes: int,
    on_message: Callable[[bytes], Awaitable[None]],
    on_broken: Callable[[bytes, RemoteProtocolError], Awaitable[None]],
) -> None:
    """Hand each MLLP payload to ``on_message`` until the stream ends.

    When the framing itself is broken (an endless block), ``on_broken`` gets the bytes to keep
    and the error, which is then raised: the session hangs up and the sender starts afresh.
    """
    decoder = MllpDecoder(max_size=max_message_bytes)
    while data := await stream.read():
        try:
            decoder.receive_data(data)
            while (payload := decoder.next_message()) is not None:
                await on_message(payload)
        except RemoteProtocolError as exc:
            await on_broken(exc.data or data, exc)
            raise


class Hl7MllpReceiver:
    """Reads MLLP frames, ingests each message, answers with an original-mode ACK."""

    def __init__(self, instrument_id: str, *, max_message_bytes: int = 1 << 20) -> None:
        self.instrument_id = instrument_id
        self._max = max_message_bytes
        self._acks = 0

    async def serve(self, stream: ByteStream, sink: Sink) -> None:
        async def keep_broken(raw: bytes, exc: RemoteProtocolError) -> None:
            await sink.ingest(
                InboundMessage(
                    self.instrument_id,
                    PROTOCOL,
                    raw,
                    datetime.now(UTC),
                    error=str(exc),
                    error_field=exc.field,
                )
            )

        await serve_mllp(
            stream, self._max, lambda payload: self._handle(payload, stream, sink), keep_broken
        )

    async def _handle(self, payload: bytes, stream: ByteStream, sink: Sink) -> None:
        now = datetime.now(UTC)
        message = decode(self.instrument_id, payload, now)
        outcome = await sink.ingest(message)
        self._acks += 1
        code = "AE" if outcome.quarantined else "AA"
        ack = build_ack(
            payload,
            code,
            control_id=f"A{self._acks:09d}",
            now=now,
            text=outcome.error[:80] if outcome.quarantined else "",
        )
        await stream.write(frame(ack))
