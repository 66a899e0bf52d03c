"""The gateway's side of an ASTM analyser: E1381 link in the host role, E1394 messages, queries.

One ``AstmHostDriver`` per instrument, with that analyser's ``AstmProfile``. Per connection it
runs ``Link("host", confirm=True)`` over the ByteStream, assembles E1394 messages from the link's
messages, stores each (``sink.ingest``) and only then releases the ACK of the frame that
completed it, so an analyser is never told a message arrived before it is durable. A message that
cannot be decoded is stored with its error (quarantine) and still acknowledged: its bytes are
kept. Host queries (Q records) are answered over the same link once the analyser's session ends.

When the gateway cannot keep a message (``NotStoredError``: its store is broken), the frame
that completed it is never acknowledged and the driver hangs up: the analyser's 15 s reply
timer runs out, it aborts the message and keeps it (E1381 6.5.2). A NAK would be wrong there:
it says the frame was garbled and asks for it again at once, six times, and the link would
have to take back a frame it already assembled. While the sink says it is not accepting
(``drivers.ports.Accepting``), ENQ is answered with NAK, E1381's "not ready to receive": the
analyser waits at least 10 s and asks again, sending nothing we would have to refuse.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from drivers.analysers.astm_base import PROTOCOL, AstmProfile, header_processing_id
from drivers.analysers.site import ANALYSER_TZ
from drivers.errors import (
    GatewayError,
    LocalProtocolError,
    RemoteProtocolError,
    TransportError,
    loggable,
)
from drivers.model import InboundMessage, WorklistOrder
from drivers.ports import Accepting, Sink, Worklist
from drivers.protocols.astm.assembler import E1394Assembler
from drivers.protocols.astm.events import (
    LinkIdle,
    MessageReceived,
    MessageSent,
    ProtocolViolation,
    SendFailed,
)
from drivers.protocols.astm.link import Link, State
from drivers.protocols.astm.query import (
    STANDARD_SPECIMEN_COMPONENT,
    HostQuery,
    NoInformationForm,
    build_reply,
    find_queries,
    header_delimiters,
)
from drivers.protocols.astm.records import Record, encode_message, parse_message
from drivers.transports import ByteStream

log = logging.getLogger(__name__)

INCOMPLETE = "incomplete message: the connection closed before its L record"


@dataclass(frozen=True, slots=True)
class _Decoded:
    message: InboundMessage
    records: list[Record] | None


def _is_query(records: Sequence[Record]) -> bool:
    kinds = {r.type for r in records}
    return "Q" in kinds and "R" not in kinds


def _decode(
    profile: AstmProfile, instrument_id: str, raw: bytes, received_at: datetime
) -> _Decoded:
    def failed(error: str, field: str | None) -> _Decoded:
        message = InboundMessage(
            instrument_id, PROTOCOL, raw, received_at, error=error, error_field=field
        )
        return _Decoded(message, None)

    try:
        records = parse_message(raw, lenient=profile.lenient, encoding=profile.encoding)
        if not records:
            raise RemoteProtocolError("no records in the message", field="record", data=raw)
        header = records[0] if records[0].type == "H" else None
        control_id = header.value(3).strip() if header is not None else ""
        processing_id = header_processing_id(header) if header is not None else ""
        # a query carries no results: it is stored for the audit trail and answered
        observations = () if _is_query(records) else profile.observations(instrument_id, records)
    except RemoteProtocolError as exc:
        return failed(exc.text_for(raw), exc.field)
    except Exception as exc:  # the profile boundary: a profile bug must not lose the message
        log.error(
            "instrument %s: profile %s failed on a message: %s",
            instrument_id,
            profile.key,
            type(exc).__name__,
        )
        # the exception's type only: its text may repeat a value of the message (patient data)
        return failed(
            f"profile {profile.key} could not map the message ({type(exc).__name__})", "profile"
        )
    message = InboundMessage(
        instrument_id,
        PROTOCOL,
        raw,
        received_at,
        observations=observations,
        control_id=control_id,
        processing_id=processing_id,
        processing_field="H.12",
    )
    return _Decoded(message, records)


def decode(
    profile: AstmProfile, instrument_id: str, raw: bytes, received_at: datetime
) -> InboundMessage:
    """Decode one stored E1394 message again (quarantine replay)."""
    return _decode(profile, instrument_id, raw, received_at).message


class AstmHostDriver:
    """Serves one ASTM analyser; see the module docstring.

    ``lenient`` overrides the profile's; ``worklist`` answers host queries with orders;
    ``no_information`` is the form of "no orders" answers; ``specimen_component`` is where Q.3
    carries the specimen ID (2 in LIS2-A2, 3 on Roche cobas). ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        instrument_id: str,
        profile: AstmProfile,
        *,
        lenient: bool | None = None,
        worklist: Worklist | None = None,
        no_information: NoInformationForm = NoInformationForm.QUERY_STATUS,
        specimen_component: int = STANDARD_SPECIMEN_COMPONENT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.instrument_id = instrument_id
        self.profile = profile
        self.lenient = profile.lenient if lenient is None else lenient
        self.worklist = worklist
        self.no_information = no_information
        self.specimen_component = specimen_component
        self.clock = clock
        #: counters over every connection: link violations seen, messages stored, queries answered
        self.violations = 0
        self.messages = 0
        self.replies = 0

    async def serve(self, stream: ByteStream, sink: Sink) -> None:
        await _Conversation(self, stream, sink).run()


class _Conversation:
    """One connection's link, assembler and pending work."""

    def __init__(self, driver: AstmHostDriver, stream: ByteStream, sink: Sink) -> None:
        self.driver = driver
        self.stream = stream
        self.sink = sink
        self.link = Link("host", now=driver.clock(), lenient=driver.lenient, confirm=True)
        self.assembler = E1394Assembler(lenient=driver.lenient)
        self._gate = sink if isinstance(sink, Accepting) else None

    async def run(self) -> None:
        try:
            while True:
                await self._process_events()
                data = await self._read()
                if self._gate is not None:  # an ENQ in ``data`` gets NAK while not accepting
                    self.link.busy = not self._gate.accepting()
                if data is None:
                    self.link.handle_timeout(self.driver.clock())
                elif not data:
                    break
                else:
                    self.link.receive_data(data, self.driver.clock())
        except TransportError:
            await self._keep_unfinished()
            raise
        await self._keep_unfinished()

    async def _read(self) -> bytes | None:
        """The next bytes, b"" at end of stream, or None when the link's next timer is due."""
        deadline = self.link.next_deadline()
        if deadline is None:
            return await self.stream.read()
        try:
            async with asyncio.timeout(max(0.0, deadline - self.driver.clock())):
                return await self.stream.read()
        except TimeoutError:
            return None

    async def _flush(self) -> None:
        data = self.link.data_to_send()
        if data:
            await self.stream.write(data)

    async def _process_events(self) -> None:
        while (event := self.link.next_event()) is not None:
            if isinstance(event, MessageReceived):
                await self._on_link_message(event.message)
            elif isinstance(event, LinkIdle):
                # the session ended: records still held form a message that had no L
                if raw := self.assembler.flush():
                    await self._store(raw)
            elif isinstance(event, ProtocolViolation):
                self.driver.violations += 1
                log.warning(
                    "instrument %s: E1381 violation: %s (%d byte(s))",
                    self.driver.instrument_id,
                    event.detail,  # never the bytes (see ProtocolViolation)
                    len(event.data),
                )
            elif isinstance(event, SendFailed):
                log.warning(
                    "instrument %s: query answer %d not delivered: %s",
                    self.driver.instrument_id,
                    event.id,
                    event.reason,
                )
            elif isinstance(event, MessageSent):
                self.driver.replies += 1
            await self._flush()
        await self._flush()

    async def _on_link_message(self, text: bytes) -> None:
        for raw in self.assembler.feed(text):
            await self._store(raw)
        # Durability: the held ACK goes out only now, after every message this link message
        # completed is stored. A link message that completed nothing is confirmed at once.
        if self.link.state is State.CONFIRMING:
            self.link.confirm_message(self.driver.clock())

    async def _store(self, raw: bytes) -> None:
        driver = self.driver
        decoded = _decode(driver.profile, driver.instrument_id, raw, datetime.now(UTC))
        await self.sink.ingest(decoded.message)
        driver.messages += 1
        if decoded.records is not None:
            for query in find_queries(
                decoded.records, specimen_component=driver.specimen_component
            ):
                await self._answer(query, raw, decoded.records)

    async def _answer(self, query: HostQuery, raw: bytes, records: Sequence[Record]) -> None:
        driver = self.driver
        if query.cancels_request:
            return
        orders: dict[str, tuple[WorklistOrder, ...]] = {}
        if driver.worklist is not None:
            try:
                for specimen_id in query.specimen_ids:
                    found = tuple(await driver.worklist(specimen_id))
                    if found:
                        orders[specimen_id] = found
            except GatewayError as exc:
                # no answer beats a wrong "no orders": the analyser times out and may ask again
                log.warning(
                    "instrument %s: worklist lookup failed, query not answered: %s",
                    driver.instrument_id,
                    loggable(exc),
                )
                return
        delimiters = header_delimiters(raw, encoding=driver.profile.encoding)
        header = records[0]
        receiver = header.field(5) if header.type == "H" else ()
        reply = build_reply(
            query,
            orders,
            now=datetime.now(UTC),
            tz=ANALYSER_TZ,
            form=driver.no_information,
            delimiters=delimiters,
            receiver=receiver,
        )
        try:
            data = encode_message(reply, delimiters, encoding=driver.profile.encoding)
            # queued now, sent by the link once the analyser's session has ended (neutral)
            self.link.send_message(data, driver.clock())
        except LocalProtocolError as exc:
            log.warning(
                "instrument %s: query answer could not be encoded: %s",
                driver.instrument_id,
                loggable(exc),
            )

    async def _keep_unfinished(self) -> None:
        """The stream ended: keep records already acknowledged, flagged as incomplete."""
        if self.link.pending:
            log.warning(
                "instrument %s: connection ended with %d query answer(s) unsent",
                self.driver.instrument_id,
                self.link.pending,
            )
        raw = self.assembler.flush()
        if not raw:
            return
        await self.sink.ingest(
            InboundMessage(
                self.driver.instrument_id,
                PROTOCOL,
                raw,
                datetime.now(UTC),
                error=INCOMPLETE,
                error_field="L",
            )
        )
