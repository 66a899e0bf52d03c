"""Generic HL7 v2 result sender over MLLP (ORU^R01 and friends), gateway in the receiving role.

Many bench analysers and middleware (Mindray BS/BC series, Abbott Architect, Stago, GeneXpert)
push results as HL7 v2 over MLLP. Each message is stored durably before the ACK goes back: AA
when stored, AE when it could not be decoded (the raw bytes are kept in quarantine), AR when
the gateway could not keep it (its store is broken: ``NotStoredError``). AR is HL7's answer for
a message refused "for reason unrelated to content or format" (table 0008), after which the
sender decides when to send it again; AE would blame the message, and some senders never
resend those. The connection stays open, so the analyser's own retry pace applies.
"""

from __future__ import annotations

from datetime import UTC, datetime

from drivers.analysers.profiles.hl7_generic import parse_results
from drivers.errors import NotStoredError, RemoteProtocolError
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
        return refused(instrument_id, raw, received_at, exc)
    return InboundMessage(
        instrument_id,
        PROTOCOL,
        raw,
        received_at,
        observations=parsed.observations,
        control_id=parsed.control_id,
        processing_id=parsed.processing_id,
        processing_field="MSH-11",
    )


def refused(
    instrument_id: str, raw: bytes, received_at: datetime, exc: RemoteProtocolError
) -> InboundMessage:
    """The quarantine-bound message for ``raw`` that ``exc`` refused (its text never quotes
    bytes read from a patient segment)."""
    return InboundMessage(
        instrument_id,
        PROTOCOL,
        raw,
        received_at,
        error=exc.text_for(raw),
        error_field=exc.field,
    )


class Hl7MllpReceiver:
    """Reads MLLP frames, ingests each message, answers with an original-mode ACK."""

    def __init__(self, instrument_id: str, *, max_message_bytes: int = 1 << 20) -> None:
        self.instrument_id = instrument_id
        self._max = max_message_bytes
        self._acks = 0

    async def serve(self, stream: ByteStream, sink: Sink) -> None:
        async def keep_broken(raw: bytes, exc: RemoteProtocolError) -> None:
            await sink.ingest(refused(self.instrument_id, raw, datetime.now(UTC), exc))

        await serve_mllp(
            stream, lambda payload: self._handle(payload, sink), keep_broken, max_size=self._max
        )

    async def _handle(self, payload: bytes, sink: Sink) -> bytes:
        """Store the message, then answer: AA when stored, AE when refused (kept in quarantine),
        AR (ERR-3 207, application internal error) when it was not stored.

        A test message (MSH-11 not P) is AA even when the site keeps it in quarantine: it was
        received, and the analyser has nothing to resend or correct."""
        now = datetime.now(UTC)
        message = decode(self.instrument_id, payload, now)
        try:
            outcome = await sink.ingest(message)
        except NotStoredError as exc:
            # MSA-3 takes 80 of the text, ERR-8 the rest
            code, text, error_code = "AR", str(exc)[:200], "207"
        else:
            rejected = outcome.quarantined and not outcome.test_message
            code, text, error_code = ("AE", outcome.error[:80], "") if rejected else ("AA", "", "")
        self._acks += 1
        return build_ack(
            payload,
            code,
            control_id=f"A{self._acks:09d}",
            now=now,
            text=text,
            error_code=error_code,
        )
