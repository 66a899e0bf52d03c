"""The ASTM host driver over real pty pairs and TCP, its message assembly, and the generic profile.

The analyser side is the project's own E1381 link in the instrument role (``AstmInstrument``),
or a replay of captured frames, talking to the driver through the gateway's serial and TCP
transports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from bench.corpus import corpus_dir
from drivers.analysers.astm_base import (
    PROTOCOL,
    AstmProfile,
)
from drivers.analysers.astm_host import INCOMPLETE, AstmHostDriver, decode
from drivers.analysers.profiles.astm_generic import GENERIC, GenericLis2Profile
from drivers.model import InboundMessage, Observation, WorklistOrder
from drivers.protocols.astm.assembler import E1394Assembler
from drivers.protocols.astm.events import Event, MessageReceived, MessageSent, SendFailed
from drivers.protocols.astm.frames import ACK, ENQ, EOT, LF, STX, build_frame
from drivers.protocols.astm.link import Link, State
from drivers.protocols.astm.query import NoInformationForm
from drivers.protocols.astm.records import Record, encode_message, parse_message
from drivers.registry import ASTM_PROFILES, DRIVERS
from drivers.transports import ByteStream, TcpListenConnector, connector_for
from gateway.errors import ConfigError, RemoteProtocolError
from simulators.astm_models import SimSample, model_for
from simulators.astm_models.astm_generic import MODEL as GENERIC_MODEL
from simulators.pty import PtyPair

WAIT = 10.0  # seconds any one exchange may take before the test fails

# --- the analyser side and a recording sink ------------------------------------------------------


class AstmInstrument:
    """An analyser for tests: ``Link("instrument")`` over a ByteStream, pumped until done."""

    def __init__(self, stream: ByteStream, *, max_text: int = 240) -> None:
        self.stream = stream
        self.link = Link("instrument", now=time.monotonic(), max_text=max_text)
        self.events: list[Event] = []
        #: every byte the host sent
        self.wire_in = bytearray()

    @property
    def received(self) -> list[bytes]:
        """Messages the host sent (query answers)."""
        return [e.message for e in self.events if isinstance(e, MessageReceived)]

    def sent(self, ident: int) -> bool:
        return any(isinstance(e, MessageSent) and e.id == ident for e in self.events)

    async def send(self, *messages: bytes) -> None:
        """Send ``messages`` in one session; return once the host acknowledged them all."""
        ids = [self.link.send_message(m, time.monotonic()) for m in messages]
        await self.pump(lambda: all(self.sent(i) for i in ids) and self._neutral())
        failed = [e for e in self.events if isinstance(e, SendFailed)]
        assert not failed, failed

    async def receive(self, count: int) -> list[bytes]:
        """Wait until the host has sent ``count`` messages in all and its session ended."""
        await self.pump(lambda: len(self.received) >= count and self._neutral())
        return self.received

    def _neutral(self) -> bool:
        return self.link.state is State.NEUTRAL and not self.link.pending

    async def pump(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while True:
                out = self.link.data_to_send()
                if out:
                    await self.stream.write(out)
                while (event := self.link.next_event()) is not None:
                    self.events.append(event)
                if done():
                    return
                deadline = self.link.next_deadline()
                try:
                    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                    async with asyncio.timeout(wait):
                        data = await self.stream.read()
                except TimeoutError:
                    self.link.handle_timeout(time.monotonic())
                    continue
                assert data, "the gateway closed the connection"
                self.wire_in += data
                self.link.receive_data(data, time.monotonic())


@dataclass(frozen=True)
class StoredOutcome:
    quarantined: bool
    error: str
    test_message: bool = False


@dataclass
class RecordingSink:
    """The Sink protocol: records what is ingested; ``gate`` holds ingest open until set."""

    gate: asyncio.Event | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    started: list[InboundMessage] = field(default_factory=list)
    stored: list[InboundMessage] = field(default_factory=list)

    async def ingest(self, message: InboundMessage) -> StoredOutcome:
        self.started.append(message)
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        self.stored.append(message)
        return StoredOutcome(message.error is not None, message.error or "")

    def connection_changed(
        self, instrument_id: str, connected: bool, detail: str, state: object = None
    ) -> None:
        pass


@pytest.fixture(params=["pty", "tcp"])
async def wire(request: pytest.FixtureRequest) -> AsyncIterator[tuple[ByteStream, ByteStream]]:
    """(gateway stream, instrument stream) over a pty pair or TCP on 127.0.0.1."""
    if request.param == "pty":
        with PtyPair() as pair:
            connector = connector_for(pair.url(9600))
            gateway = await connector.connect()
            yield gateway, pair.master_stream()
            await gateway.aclose()
            await connector.aclose()
        return
    listener, instrument_side = await tcp_pair()
    gateway = await listener.connect()
    yield gateway, instrument_side
    await instrument_side.aclose()
    await gateway.aclose()
    await listener.aclose()


async def tcp_pair() -> tuple[TcpListenConnector, ByteStream]:
    listener = connector_for("tcp-listen://127.0.0.1:0")
    assert isinstance(listener, TcpListenConnector)
    port = await listener.start()
    client = connector_for(f"tcp://127.0.0.1:{port}")
    return listener, await client.connect()


@contextlib.asynccontextmanager
async def serving(
    driver: AstmHostDriver, stream: ByteStream, sink: RecordingSink
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``driver.serve`` as a task; like the session, close the stream when it is over."""
    task = asyncio.create_task(driver.serve(stream, sink))
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await task  # re-raises what the driver raised, failing the test
        finally:
            await stream.aclose()


def sample(qc: bool = False, n: int = 0) -> SimSample:
    return GENERIC_MODEL.sample(
        random.Random(n),
        operator_id=f"op{n}",
        qc=qc,
        patient_id="" if qc else "12345678901",
        now=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
    )


def message_for(s: SimSample) -> bytes:
    return encode_message(GENERIC_MODEL.message(s))


def records_of(message: bytes) -> list[bytes]:
    return [line + b"\r" for line in message.split(b"\r") if line]


def expected_values(s: SimSample) -> list[tuple[str, str, str]]:
    return [(code, value, unit) for code, value, unit in s.values]


def values_of(observations: Sequence[Observation]) -> list[tuple[str, str, str]]:
    return [(o.test_code, o.value, o.unit) for o in observations]


# --- the driver over real transports ------------------------------------------------------------


@pytest.mark.parametrize(
    "layout", ["whole message, one frame", "one record per frame", "ETB split"]
)
async def test_message_layouts_are_assembled_stored_and_acknowledged(
    wire: tuple[ByteStream, ByteStream], layout: str
) -> None:
    gateway, instrument_stream = wire
    s = sample()
    message = message_for(s)
    sink = RecordingSink()
    driver = AstmHostDriver("astm-1", GENERIC)
    instrument = AstmInstrument(instrument_stream, max_text=40 if layout == "ETB split" else 240)
    async with serving(driver, gateway, sink):
        if layout == "one record per frame":
            await instrument.send(*records_of(message))
        else:
            await instrument.send(message)
        assert len(sink.stored) == 1
    stored = sink.stored[0]
    assert stored.raw == message  # the E1394 text exactly as sent
    assert stored.error is None and stored.protocol == PROTOCOL
    assert values_of(stored.observations) == expected_values(s)
    assert {o.patient_id for o in stored.observations} == {"12345678901"}
    assert driver.messages == 1 and driver.violations == 0


async def test_several_messages_in_one_session_are_stored_separately(
    wire: tuple[ByteStream, ByteStream],
) -> None:
    gateway, instrument_stream = wire
    samples = [sample(n=n) for n in range(3)] + [sample(qc=True, n=9)]
    sink = RecordingSink()
    instrument = AstmInstrument(instrument_stream)
    async with serving(AstmHostDriver("astm-1", GENERIC), gateway, sink):
        await instrument.send(*(message_for(s) for s in samples))
    assert [m.raw for m in sink.stored] == [message_for(s) for s in samples]
    assert [values_of(m.observations) for m in sink.stored] == [expected_values(s) for s in samples]
    qc = sink.stored[-1].observations[0]
    assert qc.is_qc and qc.control_lot == samples[-1].control_lot and qc.patient_id == ""


async def test_the_last_frame_is_acknowledged_only_after_ingest_returned(
    wire: tuple[ByteStream, ByteStream],
) -> None:
    gateway, instrument_stream = wire
    sink = RecordingSink(gate=asyncio.Event())
    instrument = AstmInstrument(instrument_stream, max_text=40)
    message = message_for(sample())
    async with serving(AstmHostDriver("astm-1", GENERIC), gateway, sink):
        sending = asyncio.create_task(instrument.send(message))
        await asyncio.wait_for(sink.arrived.wait(), WAIT)
        await asyncio.sleep(0.3)  # room for a premature ACK to arrive, if the driver sent one
        assert not sending.done()
        assert instrument.link.state is State.SENDING  # still waiting for the final ACK
        assert not any(isinstance(e, MessageSent) for e in instrument.events)
        assert sink.stored == []
        sink.gate.set()  # type: ignore[union-attr]
        await asyncio.wait_for(sending, WAIT)
    assert instrument.sent(1) and [m.raw for m in sink.stored] == [message]


async def test_a_message_that_cannot_be_decoded_is_kept_and_still_acknowledged(
    wire: tuple[ByteStream, ByteStream],
) -> None:
    gateway, instrument_stream = wire
    bad = message_for(sample()).replace(b"|20260301103000|", b"|2026-03-01|")
    assert b"2026-03-01" in bad
    sink = RecordingSink()
    instrument = AstmInstrument(instrument_stream)
    async with serving(AstmHostDriver("astm-1", GENERIC), gateway, sink):
        await instrument.send(bad)  # returns only once the host ACKed
        good = message_for(sample(n=1))
        await instrument.send(good)  # and the link goes on
    quarantined, stored = sink.stored
    assert quarantined.raw == bad and quarantined.observations == ()
    assert quarantined.error_field == "R.13" and "2026-03-01" in (quarantined.error or "")
    assert stored.error is None and stored.raw == good


async def test_query_without_worklist_gets_the_standard_no_information_answer(
    wire: tuple[ByteStream, ByteStream],
) -> None:
    gateway, instrument_stream = wire
    query = b"H|\\^&|||EM200^1^SER42\rQ|1|^SPEC-7||^^^ALL||||||||O\rL|1|N\r"
    sink = RecordingSink()
    driver = AstmHostDriver("astm-1", GENERIC)
    instrument = AstmInstrument(instrument_stream)
    async with serving(driver, gateway, sink):
        await instrument.send(query)
        (answer,) = await instrument.receive(1)
    assert sink.stored[0].raw == query  # the query is in the audit of raw messages
    assert sink.stored[0].error is None and sink.stored[0].observations == ()
    reply = parse_message(answer)
    assert [r.type for r in reply] == ["H", "Q", "L"]
    assert reply[0].value(10, component=2) == "SER42"  # addressed to the asking analyser
    assert reply[1].value(3, component=1) == "SPEC-7"
    assert reply[1].value(13) == "X" and reply[2].value(3) == "I"
    assert driver.replies == 1


async def test_query_with_a_worklist_returns_the_orders() -> None:
    listener, instrument_stream = await tcp_pair()
    asked: list[str] = []

    async def worklist(specimen_id: str) -> list[WorklistOrder]:
        asked.append(specimen_id)
        if specimen_id != "SPEC-7":
            return []
        return [WorklistOrder("SPEC-7", "12345678901", ("GLU", "CRP"), priority="S")]

    driver = AstmHostDriver(
        "astm-1", GENERIC, worklist=worklist, no_information=NoInformationForm.ORDER_REPORT
    )
    sink = RecordingSink()
    instrument = AstmInstrument(instrument_stream)
    gateway = await listener.connect()
    try:
        async with serving(driver, gateway, sink):
            await instrument.send(b"H|\\^&\rQ|1|^SPEC-7\\^SPEC-8||^^^ALL||||||||O\rL|1|N\r")
            (answer,) = await instrument.receive(1)
    finally:
        await instrument_stream.aclose()
        await listener.aclose()
    assert asked == ["SPEC-7", "SPEC-8"]
    reply = parse_message(answer)
    assert [r.type for r in reply] == ["H", "P", "O", "P", "O", "L"]
    _, patient, order, _, no_order, _ = reply
    assert patient.value(3) == "12345678901"
    assert order.value(3) == "SPEC-7" and order.value(6) == "S" and order.value(26) == "Q"
    assert [rep[3] for rep in order.field(5)] == ["GLU", "CRP"]
    assert no_order.value(3) == "SPEC-8" and no_order.value(26) == "Y"


async def test_a_cancelled_query_gets_no_answer() -> None:
    listener, instrument_stream = await tcp_pair()
    sink = RecordingSink()
    instrument = AstmInstrument(instrument_stream)
    gateway = await listener.connect()
    async with serving(AstmHostDriver("astm-1", GENERIC), gateway, sink) as task:
        await instrument.send(b"H|\\^&\rQ|1|^SPEC-7||ALL||||||||A\rL|1|N\r")
        await instrument.send(message_for(sample()))  # a later session still works
        await instrument_stream.aclose()
        await asyncio.wait_for(task, WAIT)
    await listener.aclose()
    assert len(sink.stored) == 2
    assert set(instrument.wire_in) == {ACK}  # the host never asked for the line (no ENQ)


async def test_a_stream_closing_inside_a_multi_frame_message_stores_nothing() -> None:
    listener, instrument_stream = await tcp_pair()
    sink = RecordingSink()
    gateway = await listener.connect()
    driver = AstmHostDriver("astm-1", GENERIC)
    async with serving(driver, gateway, sink) as task:
        await instrument_stream.write(bytes([ENQ]))
        assert await asyncio.wait_for(instrument_stream.read(), WAIT) == bytes([ACK])
        await instrument_stream.write(build_frame(1, message_for(sample())[:100], final=False))
        assert await asyncio.wait_for(instrument_stream.read(), WAIT) == bytes([ACK])
        await instrument_stream.aclose()
        await asyncio.wait_for(task, WAIT)  # returns, no exception
    await listener.aclose()
    assert sink.started == [] and driver.messages == 0


async def test_a_stream_closing_between_records_keeps_them_flagged_incomplete() -> None:
    listener, instrument_stream = await tcp_pair()
    sink = RecordingSink()
    gateway = await listener.connect()
    records = records_of(message_for(sample()))
    async with serving(AstmHostDriver("astm-1", GENERIC), gateway, sink) as task:
        # one record per ETX frame: H, P and O are each ACKed, then the analyser goes away
        # without L and without EOT
        await instrument_stream.write(bytes([ENQ]))
        assert await asyncio.wait_for(instrument_stream.read(), WAIT) == bytes([ACK])
        for number, record in enumerate(records[:3], start=1):
            await instrument_stream.write(build_frame(number, record, final=True))
            assert await asyncio.wait_for(instrument_stream.read(), WAIT) == bytes([ACK])
        await instrument_stream.aclose()
        await asyncio.wait_for(task, WAIT)
    await listener.aclose()
    (kept,) = sink.stored
    assert kept.raw == b"".join(records[:3])
    assert kept.error == INCOMPLETE and kept.error_field == "L" and kept.observations == ()


def replay_units(data: bytes) -> list[bytes]:
    """Split a captured analyser stream into what it sent between host replies."""
    units: list[bytes] = []
    i = 0
    while i < len(data):
        if data[i] == STX:
            end = data.index(bytes([LF]), i) + 1
            units.append(data[i:end])
            i = end
        else:
            if data[i] in (ENQ, EOT):
                units.append(data[i : i + 1])
            i += 1
    return units


@pytest.mark.parametrize(
    ("name", "results"),
    [
        ("stago_sta_satellite_max__ruby-astm.bytearray.txt", 6),  # one record per frame
        ("roche_cobas_e411_multiframe__ruby-astm.raw.bin", 7),  # ETB split mid-field
    ],
)
async def test_captured_sessions_replayed_frame_by_frame(
    wire: tuple[ByteStream, ByteStream], name: str, results: int
) -> None:
    gateway, instrument_stream = wire
    path = corpus_dir("astm") / name
    data = (
        bytes(b for chunk in json.loads(path.read_text()) for b in chunk)
        if name.endswith(".bytearray.txt")
        else path.read_bytes()
    )
    sink = RecordingSink()
    driver = AstmHostDriver("astm-1", GENERIC)
    async with serving(driver, gateway, sink):
        for unit in replay_units(data):
            await instrument_stream.write(unit)
            if unit[0] != EOT:
                assert await asyncio.wait_for(instrument_stream.read(), WAIT) == bytes([ACK])
        await asyncio.wait_for(_until(lambda: len(sink.stored) == 1), WAIT)
    (stored,) = sink.stored
    assert stored.error is None and len(stored.observations) == results
    assert driver.violations == 0


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():  # noqa: ASYNC110 - polls state the driver task changes
        await asyncio.sleep(0.01)


async def test_a_receive_timeout_is_counted_and_the_link_recovers() -> None:
    clock = FakeClock()
    listener, instrument_stream = await tcp_pair()
    sink = RecordingSink()
    gateway = await listener.connect()
    # lenient: the stray byte that wakes the driver below is not itself a violation
    driver = AstmHostDriver("astm-1", GENERIC, clock=clock, lenient=True)
    async with serving(driver, gateway, sink):
        await instrument_stream.write(bytes([ENQ]))
        assert await asyncio.wait_for(instrument_stream.read(), WAIT) == bytes([ACK])
        clock.now += 31.0  # past E1381's 30 s receive timeout, without waiting for it
        await instrument_stream.write(b"\x00")  # wake the read; the deadline is now past
        await asyncio.wait_for(_until(lambda: driver.violations == 1), WAIT)
        instrument = AstmInstrument(instrument_stream)
        await instrument.send(message_for(sample()))  # a fresh session is answered
    await instrument_stream.aclose()
    await listener.aclose()
    assert len(sink.stored) == 1


@dataclass
class FakeClock:
    """Monotonic seconds the test moves by hand (the driver's timers read only this)."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


# --- assembly of E1394 messages (sans-IO) ------------------------------------------------------


def test_assembler_handles_whole_split_and_back_to_back_messages() -> None:
    first, second = message_for(sample()), message_for(sample(n=2))
    whole = E1394Assembler(lenient=False)
    assert whole.feed(first + second) == [first, second]
    per_record = E1394Assembler(lenient=False)
    out = [m for r in records_of(first) for m in per_record.feed(r)]
    assert out == [first] and not per_record.pending


def test_assembler_closes_a_message_without_l_on_the_next_h_or_on_flush() -> None:
    assembler = E1394Assembler(lenient=False)
    assert assembler.feed(b"H|\\^&\rR|1|^^^A|1\r") == []
    assert assembler.feed(b"H|\\^&\rR|1|^^^B|2\r") == [b"H|\\^&\rR|1|^^^A|1\r"]
    assert assembler.flush() == b"H|\\^&\rR|1|^^^B|2\r"
    assert assembler.flush() == b""


def test_assembler_keeps_bytes_as_received() -> None:
    strict = E1394Assembler(lenient=False)
    assert strict.feed(b"H|\\^&") == []  # a record frame without its CR
    assert strict.feed(b"\r") == []  # a CR arriving on its own joins the record before
    assert strict.feed(b"L|1") == [b"H|\\^&\r\rL|1\r"]  # a missing final CR is added
    lenient = E1394Assembler(lenient=True)
    assert lenient.feed(b"H|\\^&\r\nP|1\nL|1|N\r\n") == [b"H|\\^&\r\nP|1\nL|1|N\r\n"]


def test_decode_for_replay_matches_what_the_driver_stores() -> None:
    message = message_for(sample())
    at = datetime(2026, 3, 1, tzinfo=UTC)
    decoded = decode(GENERIC, "astm-1", message, at)
    assert decoded.error is None and values_of(decoded.observations) == expected_values(sample())
    garbage = decode(GENERIC, "astm-1", b"X|garbage\r", at)
    assert garbage.error is not None and garbage.error_field == "record type"
    empty = decode(GENERIC, "astm-1", b"", at)
    assert empty.error is not None and empty.error_field == "record"


class BrokenProfile(GenericLis2Profile):
    def observations(
        self, instrument_id: str, records: Sequence[Record]
    ) -> tuple[Observation, ...]:
        raise IndexError("a bug in a profile")


def test_a_profile_bug_quarantines_the_message_instead_of_crashing() -> None:
    decoded = decode(BrokenProfile(), "astm-1", message_for(sample()), datetime.now(UTC))
    assert decoded.error_field == "profile" and "IndexError" in (decoded.error or "")


# --- the generic LIS2-A2 profile ---------------------------------------------------------------


def corpus_records(name: str) -> list[Record]:
    data = (corpus_dir("astm") / name).read_bytes()
    text = data[data.index(b"\x02") + 2 : data.rindex(b"\x03")]
    return parse_message(text)


def test_generic_profile_reads_the_afinion_capture() -> None:
    (obs,) = GENERIC.observations("a", corpus_records("abbott_afinion2__senaite.astm.txt"))
    assert (obs.test_code, obs.value, obs.unit, obs.value_type) == ("HbA1c", "5.9", "%", "NM")
    assert obs.operator_id == "3643" and obs.result_status == "F"
    assert obs.performed_at == datetime(2024, 12, 6, 13, 6, 15, tzinfo=UTC)  # 14:06:15 Oslo
    assert obs.instrument_serial == "AF20052397"  # H.5 component 3
    assert obs.specimen_id == "5"  # O.3 empty: O.4
    assert obs.patient_id == "3643"  # P.3 empty: P.4, the laboratory-assigned ID


def test_generic_profile_attaches_comments_and_flags() -> None:
    records = corpus_records("roche_cobas_c311__senaite.astm.txt")
    observations = GENERIC.observations("c", records)
    assert len(observations) == 7
    first = observations[0]
    assert (first.test_code, first.value, first.unit) == ("685/", "22.4", "U/l")
    assert first.abnormal_flags == ("A",) and first.comment == "43"
    assert first.specimen_id == "11625"


def test_generic_profile_errors_name_the_field_and_the_text() -> None:
    base = b"H|\\^&\rP|1|123\rO|1|S1\r"
    with pytest.raises(RemoteProtocolError) as bad_date:
        GENERIC.observations("x", parse_message(base + b"R|1|^^^GLU|5.1|||||F||||20261301\r"))
    assert bad_date.value.field == "R.13" and b"20261301" in (bad_date.value.data or b"")
    with pytest.raises(RemoteProtocolError) as no_code:
        GENERIC.observations("x", parse_message(base + b"R|1|^^^|5.1\r"))
    assert no_code.value.field == "R.3"


def test_generic_profile_keeps_text_values_and_correction_status() -> None:
    text = b"H|\\^&\rP|1|PID\rO|1|S1\rR|1|^^^ABO|  A POS |||||C\rC|1|I|re-run|G\rL|1\r"
    (obs,) = GENERIC.observations("x", parse_message(text))
    assert (obs.value, obs.value_type, obs.result_status) == ("A POS", "ST", "C")
    assert obs.comment == "re-run" and obs.patient_id == "PID"


def test_generic_simulated_messages_round_trip() -> None:
    for n in range(20):
        s = sample(qc=n % 3 == 0, n=n)
        observations = GENERIC.observations("sim", parse_message(message_for(s)))
        assert values_of(observations) == expected_values(s)
        assert {o.performed_at for o in observations} == {s.performed_at}
        assert {(o.is_qc, o.control_lot, o.control_level) for o in observations} == {
            (s.is_qc, s.control_lot, s.control_level)
        }
        assert {o.operator_id for o in observations} == {s.operator_id}


# --- the registry ------------------------------------------------------------------------------


def test_every_astm_profile_is_registered_with_options() -> None:
    assert len({p.key for p in ASTM_PROFILES}) == len(ASTM_PROFILES)
    for profile in ASTM_PROFILES:
        spec = DRIVERS[profile.key]
        assert spec.roles == ("host",) and spec.protocol == "ASTM E1381/E1394"
        driver = spec.factory("i", {"lenient": True, "no_information": "order"})
        assert isinstance(driver, AstmHostDriver)
        assert driver.lenient and driver.no_information is NoInformationForm.ORDER_REPORT
    spec = DRIVERS["astm_generic"]
    replayed = spec.decode("i", message_for(sample()), datetime.now(UTC))
    assert replayed.error is None and len(replayed.observations) == len(sample().values)
    for bad in ({"no_information": "maybe"}, {"query_specimen_component": 0}, {"lenient": "x"}):
        with pytest.raises(ConfigError):
            spec.factory("i", bad)


@pytest.mark.parametrize("profile", ASTM_PROFILES, ids=lambda p: p.key)
def test_every_profile_simulated_message_decodes_through_the_driver(profile: AstmProfile) -> None:
    rng = random.Random(3)
    now = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    for qc in (False, True):
        s = model_for(profile).sample(
            rng, operator_id="op1", qc=qc, patient_id="" if qc else "12345678901", now=now
        )
        raw = encode_message(model_for(profile).message(s), encoding=profile.encoding)
        for text in E1394Assembler(lenient=profile.lenient).feed(raw):
            message = DRIVERS[profile.key].decode("i", text, now)
            assert message.error is None, message.error
            assert message.observations and {o.is_qc for o in message.observations} == {qc}
