"""Generic HL7 v2 result sender over MLLP (ORU^R01 and friends), gateway in the receiving role.

Many bench analysers and middleware (Mindray BS/BC series, Abbott Architect, Stago, GeneXpert)
push results as HL7 v2 over MLLP. Each message is stored durably before the ACK goes back: AA
when stored, AE when it could not be decoded (the raw bytes are kept in quarantine).
"""

from __future__ import annotations

from datetime import UTC, datetime

from drivers.analysers.profiles.hl7_generic import parse_results
from drivers.errors import RemoteProtocolError
from drivers.mllp import serve_mllp
from drivers.model import InboundMessage
from drivers.ports import Sink
from drivers.protocols.hl7.ack import build_ack
from drivers.transports import ByteStream

PROTOCOL = "hl7v2-mllp"


def decode(instrument_id: str, raw: bytes, received_at: datetime) -> InboundMessage:
    """Turn one MLLP payload into an inbound message (or a quarantine-bound one)."""
    try:
        parsed = parse_results(raw, instrument_id)
    except RemoteProtocolError as exc:
        return InboundMessage(
            instrument_id,
            PROTOCOL,
            raw,
            received_at,
            error=exc.text_for(raw),
            error_field=exc.field,
        )
    return InboundMessage(
        instrument_id,
        PROTOCOL,
        raw,
        received_at,
        observations=parsed.observations,
        control_id=parsed.control_id,
    )


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
                    error=exc.text_for(raw),
                    error_field=exc.field,
                )
            )

        await serve_mllp(
            stream, lambda payload: self._handle(payload, sink), keep_broken, max_size=self._max
        )

    async def _handle(self, payload: bytes, sink: Sink) -> bytes:
        """Store the message, then answer: AA when stored, AE when kept in quarantine."""
        now = datetime.now(UTC)
        message = decode(self.instrument_id, payload, now)
        outcome = await sink.ingest(message)
        self._acks += 1
        code = "AE" if outcome.quarantined else "AA"
        return build_ack(
            payload,
            code,
            control_id=f"A{self._acks:09d}",
            now=now,
            text=outcome.error[:80] if outcome.quarantined else "",
        )
