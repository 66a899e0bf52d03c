"""The ASTM analyser simulator against a bare host-role Link, over a pty pair and over TCP."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from drivers.analysers.profiles.astm_generic import GENERIC
from drivers.protocols.astm.events import (
    Event,
    MessageReceived,
    MessageSent,
    ProtocolViolation,
    SendFailed,
)
from drivers.protocols.astm.frames import ACK, ENQ, EOT, MAX_FRAME, NAK, STX, decode_frame
from drivers.protocols.astm.link import Link, State
from drivers.protocols.astm.records import parse_message
from drivers.transports import ByteStream, Connector, TcpListenConnector, connector_for
from gateway.errors import ConfigError
from gateway.national_id import classify
from simulators.astm_analyser import (
    AstmAnalyserSim,
    AstmLedger,
    AstmSimOptions,
    PtyConnector,
    query_message,
)
from simulators.astm_faults import (
    Fault,
    FaultKind,
    FaultWire,
    HangUp,
    Pause,
    Write,
    parse_fault,
    split_output,
    spoil_checksum,
)
from simulators.pty import PtyPair

RUN_BOUND_S = 30.0


@dataclass
class HostEnd:
    """A bare host-role Link over a ByteStream, recording everything it sees and does.

    ``refuse`` frames are answered NAK instead of ACK (a host that keeps refusing); a message
    with a Q record is answered with ``reply`` (H, P, O for the specimen, L) after the session.
    """

    lenient: bool = False
    time_scale: float = 1.0
    refuse: int = 0
    answer_queries: bool = True
    messages: list[bytes] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    #: (monotonic time, "in" | "out", bytes) for every read and write
    wire: list[tuple[float, str, bytes]] = field(default_factory=list)
    connections: int = 0

    def now(self) -> float:
        return time.monotonic() * self.time_scale

    def bytes_in(self) -> bytes:
        return b"".join(data for _, way, data in self.wire if way == "in")

    def bytes_out(self) -> bytes:
        return b"".join(data for _, way, data in self.wire if way == "out")

    async def serve(self, stream: ByteStream) -> None:
        self.connections += 1
        link = Link("host", now=self.now(), lenient=self.lenient)
        while True:
            await self._flush(link, stream, answering=False)
            deadline = link.next_deadline()
            wait = None if deadline is None else max(0.0, (deadline - self.now()) / self.time_scale)
            try:
                async with asyncio.timeout(wait):
                    data = await stream.read()
            except TimeoutError:
                link.handle_timeout(self.now())
                continue
            if not data:
                return
            self.wire.append((time.monotonic(), "in", data))
            answering = link.state is State.RECEIVING and STX in data  # not an EOT+ENQ
            link.receive_data(data, self.now())
            await self._flush(link, stream, answering=answering)

    async def _flush(self, link: Link, stream: ByteStream, *, answering: bool) -> None:
        while (event := link.next_event()) is not None:
            self.events.append(event)
            if isinstance(event, MessageReceived):
                self.messages.append(event.message)
                self._maybe_answer(link, event.message)
        out = link.data_to_send()
        if answering and self.refuse and ACK in out:
            self.refuse -= 1
            out = out.replace(bytes([ACK]), bytes([NAK]))
        if out:
            self.wire.append((time.monotonic(), "out", out))
            await stream.write(out)

    def _maybe_answer(self, link: Link, message: bytes) -> None:
        records = parse_message(message)
        for record in records:
            if record.type == "Q" and self.answer_queries:
                specimen = record.value(3, component=1)
                reply = (
                    f"H|\\^&|||HOST||||||||LIS2-A2\rP|1\rO|1|{specimen}||^^^GLU|R\rL|1|N\r"
                ).encode()
                link.send_message(reply, self.now())


@contextlib.asynccontextmanager
async def tcp_host(host: HostEnd) -> AsyncIterator[Connector]:
    """A listening host that serves connections one after another; yields the client side."""
    listener = connector_for("tcp-listen://127.0.0.1:0")
    assert isinstance(listener, TcpListenConnector)
    port = await listener.start()

    async def accept() -> None:
        while True:
            stream = await listener.connect()
            try:
                await host.serve(stream)
            finally:
                await stream.aclose()

    task = asyncio.create_task(accept())
    try:
        yield connector_for(f"tcp://127.0.0.1:{port}")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await listener.aclose()


@contextlib.asynccontextmanager
async def pty_host(host: HostEnd) -> AsyncIterator[Connector]:
    """The host on the serial side of a pty pair; yields the simulator's connector."""
    with PtyPair() as pair:
        serial = connector_for(pair.url(9600))
        stream = await serial.connect()
        task = asyncio.create_task(host.serve(stream))
        try:
            yield PtyConnector(pair)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await stream.aclose()
            await serial.aclose()


HOSTS: dict[str, Callable[[HostEnd], contextlib.AbstractAsyncContextManager[Connector]]] = {
    "pty": pty_host,
    "tcp": tcp_host,
}


async def run_sim(
    transport: str, host: HostEnd, options: AstmSimOptions
) -> tuple[AstmAnalyserSim, AstmLedger]:
    sim = AstmAnalyserSim(GENERIC, options)
    async with HOSTS[transport](host) as connector:
        ledger = await asyncio.wait_for(sim.run(connector), RUN_BOUND_S)
    return sim, ledger


def frames_in(data: bytes) -> list[bytes]:
    """The frames (STX .. LF) in a byte stream, in order."""
    return [token for token in split_output(data) if token[0] == STX]


def results_of(ledger: AstmLedger) -> list[bytes]:
    return [entry.raw for entry in ledger.acked]


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_the_host_receives_exactly_the_acknowledged_messages(transport: str) -> None:
    host = HostEnd()
    options = AstmSimOptions(
        seed=4,  # a seed whose six samples hold controls and both valid and invalid IDs
        count=6,
        qc_share=0.3,
        invalid_patient_share=0.3,
        operator_ids=("OP7", "OP8"),
        max_text=64,
    )
    _, ledger = await run_sim(transport, host, options)
    assert len(ledger.acked) == 6 and not ledger.failures and not ledger.violations
    assert host.messages == results_of(ledger)
    assert [e.number for e in ledger.acked] == list(range(1, 7))
    specimens = [e.specimen_id for e in ledger.acked]
    assert len(set(specimens)) == 6
    for entry in ledger.acked:
        assert entry.specimen_id.encode() in entry.raw
        assert entry.sample.operator_id in ("OP7", "OP8")
        if entry.sample.is_qc:
            assert entry.sample.patient_id == ""
        else:
            assert classify(entry.sample.patient_id).valid == entry.patient_id_valid
    assert {e.patient_id_valid for e in ledger.acked} == {True, False}
    assert any(e.sample.is_qc for e in ledger.acked)
    # small max_text: every message went out in several frames, numbered from 1 per session
    assert all(len(raw) > 64 for raw in results_of(ledger))
    frames = frames_in(host.bytes_in())
    assert frames[0][1:2] == b"1" and frames[1][1:2] == b"2"
    assert not [e for e in host.events if isinstance(e, ProtocolViolation)]


async def test_the_same_seed_sends_the_same_samples() -> None:
    first = await run_sim("tcp", HostEnd(), AstmSimOptions(seed=3, count=3))
    again = await run_sim("tcp", HostEnd(), AstmSimOptions(seed=3, count=3))
    assert [e.sample.values for e in first[1].acked] == [e.sample.values for e in again[1].acked]
    assert [e.specimen_id for e in first[1].acked] == [e.specimen_id for e in again[1].acked]


async def test_rate_paces_the_samples() -> None:
    started = time.monotonic()
    await run_sim("tcp", HostEnd(), AstmSimOptions(seed=1, count=3, rate_per_s=10.0))
    assert time.monotonic() - started >= 0.2  # three samples at 10/s: two intervals at least


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_bad_checksum_is_nakked_and_the_frame_retransmitted(transport: str) -> None:
    host = HostEnd()
    fault = Fault(FaultKind.BAD_CHECKSUM, at_message=2, frame=1)
    options = AstmSimOptions(seed=11, count=3, max_text=64, faults=(fault,))
    _, ledger = await run_sim(transport, host, options)
    assert host.messages == results_of(ledger) and len(ledger.acked) == 3
    assert ledger.faults_fired == {"bad_checksum": 1}
    frames = frames_in(host.bytes_in())
    spoiled = [i for i, f in enumerate(frames) if b"checksum" in _decode_error(f)]
    assert len(spoiled) == 1
    bad = frames[spoiled[0]]
    assert frames[spoiled[0] + 1] == bad[:-4] + _good_checksum(bad) + b"\r\n"  # same frame, fixed
    assert bytes([NAK]) in host.bytes_out()
    violations = [e for e in host.events if isinstance(e, ProtocolViolation)]
    assert len(violations) == 1 and "checksum" in violations[0].detail


def _decode_error(frame: bytes) -> bytes:
    try:
        decode_frame(frame, expected_number=None)
    except Exception as exc:
        return str(exc).encode()
    return b""


def _good_checksum(frame: bytes) -> bytes:
    return b"%02X" % (sum(frame[1:-4]) % 256)


async def test_a_frame_refused_six_times_makes_the_simulator_give_up_then_resend() -> None:
    host = HostEnd()
    fault = Fault(FaultKind.BAD_CHECKSUM, at_message=1, every_attempt=True)
    _, ledger = await run_sim("tcp", host, AstmSimOptions(seed=5, count=2, faults=(fault,)))
    assert [f.reason for f in ledger.failures] == ["frame refused 6 times"]
    assert ledger.failures[0].number == 1
    first = frames_in(host.bytes_in())[:6]
    assert len(set(first)) == 1  # the same spoiled frame six times...
    assert host.bytes_out().count(bytes([NAK])) == 6  # ...each refused
    # ...then EOT, and the message goes again, whole and clean, in a new session
    assert host.messages == results_of(ledger) and [e.number for e in ledger.acked] == [1, 2]


async def test_a_host_that_keeps_nakking_makes_the_simulator_abandon_after_max_attempts() -> None:
    host = HostEnd(refuse=1000)
    options = AstmSimOptions(seed=5, count=1, max_attempts=2)
    _, ledger = await run_sim("pty", host, options)
    assert ledger.abandoned == [1] and not ledger.acked
    assert [f.reason for f in ledger.failures] == ["frame refused 6 times"] * 2
    assert len(frames_in(host.bytes_in())) == 12


async def test_a_query_gets_the_hosts_reply_on_the_ledger() -> None:
    host = HostEnd()
    options = AstmSimOptions(seed=2, count=2, query_share=1.0)
    _, ledger = await run_sim("pty", host, options)
    assert len(ledger.queries) == 2 and len(ledger.acked) == 2
    for query, result in zip(ledger.queries, ledger.acked, strict=True):
        assert query.specimen_id == result.specimen_id and query.number + 1 == result.number
        assert query.answered and not query.lost and len(query.replies) == 1
        records = parse_message(query.replies[0])
        assert [r.type for r in records] == ["H", "P", "O", "L"]
        assert records[2].value(3) == query.specimen_id
        sent = parse_message(query.raw)
        assert sent[1].type == "Q" and sent[1].value(3, component=1) == query.specimen_id
        assert sent[1].value(13) == "O"
    # the host saw query, result, query, result: each result after its query's reply
    assert [m[:1] for m in host.messages] == [b"H"] * 4
    assert [b"\rQ|" in m for m in host.messages] == [True, False, True, False]


async def test_a_query_without_an_answer_times_out_and_the_result_still_goes() -> None:
    host = HostEnd(answer_queries=False)
    options = AstmSimOptions(seed=2, count=1, query_share=1.0, reply_timeout_s=0.3)
    _, ledger = await run_sim("tcp", host, options)
    assert ledger.queries[0].lost.startswith("no reply") and not ledger.queries[0].replies
    assert len(ledger.acked) == 1


async def test_nak_storm_makes_the_host_give_up_its_reply_after_six_attempts() -> None:
    host = HostEnd()
    fault = Fault(FaultKind.NAK_STORM, at_message=1)
    options = AstmSimOptions(seed=4, count=1, query_share=1.0, faults=(fault,))
    _, ledger = await run_sim("tcp", host, options)
    failed = [e for e in host.events if isinstance(e, SendFailed)]
    assert [e.reason for e in failed] == ["frame refused 6 times"]
    assert ledger.refused_frames == 6 and ledger.queries[0].refused and ledger.queries[0].answered
    reply_frames = frames_in(host.bytes_out())
    assert len(reply_frames) == 6 and len(set(reply_frames)) == 1
    assert host.bytes_in().count(bytes([NAK])) == 6
    assert len(ledger.acked) == 1 and host.messages[-1] == ledger.acked[0].raw


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_a_stall_shorter_than_the_hosts_timer_delays_but_delivers(transport: str) -> None:
    host = HostEnd()
    fault = Fault(FaultKind.STALL, at_message=1, frame=2, seconds=0.4)
    options = AstmSimOptions(seed=8, count=2, max_text=64, faults=(fault,))
    _, ledger = await run_sim(transport, host, options)
    assert host.messages == results_of(ledger) and len(ledger.acked) == 2
    frame_times = [t for t, way, data in host.wire if way == "in" and data[:1] == bytes([STX])]
    gaps = [b - a for a, b in itertools.pairwise(frame_times)]
    assert max(gaps) >= 0.4 and gaps.index(max(gaps)) == 1  # silent before the third frame
    assert ledger.connections == 1


async def test_a_stall_past_the_hosts_receive_timer_loses_the_partial_and_it_is_resent() -> None:
    # Scaled clocks instead of a 30 s sleep: the host's 30 s receive timer runs out after
    # 0.3 s, the simulator's 15 s reply timer after 0.75 s; the stall lasts 0.6 s.
    host = HostEnd(time_scale=100.0)
    fault = Fault(FaultKind.STALL, at_message=1, frame=1, seconds=0.6)
    options = AstmSimOptions(seed=8, count=2, max_text=64, time_scale=20.0, faults=(fault,))
    _, ledger = await run_sim("tcp", host, options)
    details = [e.detail for e in host.events if isinstance(e, ProtocolViolation)]
    assert any(d.startswith("no frame or EOT within 30 s") for d in details)
    assert [(f.number, f.reason) for f in ledger.failures] == [(1, "no reply to frame within 15 s")]
    assert host.messages == results_of(ledger) and [e.number for e in ledger.acked] == [1, 2]


@pytest.mark.parametrize("transport", ["pty", "tcp"])
@pytest.mark.parametrize(
    "fault",
    [
        Fault(FaultKind.DISCONNECT, at_message=2, frame=2),
        Fault(FaultKind.STALL, at_message=2, frame=1, seconds=0.2, then_close=True),
    ],
    ids=["disconnect", "stall-then-close"],
)
async def test_a_hang_up_mid_message_is_followed_by_the_whole_message_again(
    transport: str, fault: Fault
) -> None:
    host = HostEnd()
    options = AstmSimOptions(seed=9, count=3, max_text=64, faults=(fault,))
    _, ledger = await run_sim(transport, host, options)
    assert ledger.connections == 2 and ledger.faults_fired == {fault.kind.value: 1}
    assert host.messages == results_of(ledger) and len(ledger.acked) == 3
    first, second, third = results_of(ledger)
    # message 2 went out cut after `frame` frames (64 bytes of text each), then whole
    texts = [decode_frame(f, expected_number=None).text for f in frames_in(host.bytes_in())]
    assert b"".join(texts) == first + second[: 64 * fault.frame] + second + third
    if transport == "tcp":
        assert host.connections == 2
    else:  # the serial line stays open: the host sees a new ENQ mid-message and starts afresh
        details = [e.detail for e in host.events if isinstance(e, ProtocolViolation)]
        assert any("ENQ during transfer" in d for d in details)


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_garbage_between_frames_is_ignored_by_the_host(transport: str) -> None:
    host = HostEnd(lenient=True)
    fault = Fault(FaultKind.GARBAGE, probability=1.0)
    options = AstmSimOptions(seed=12, count=3, max_text=64, faults=(fault,))
    _, ledger = await run_sim(transport, host, options)
    assert host.messages == results_of(ledger) and len(ledger.acked) == 3
    assert ledger.faults_fired == {"garbage": 3}
    wire = host.bytes_in()
    framed = b"".join(frames_in(wire))
    controls = sum(wire.count(bytes([c])) for c in (ENQ, EOT))
    assert len(wire) - len(framed) > controls  # noise went out beside frames and ENQ/EOT
    assert wire[0] != ENQ  # noise before the very first ENQ
    assert not ledger.failures and not [e for e in host.events if isinstance(e, SendFailed)]


async def test_a_strict_host_reports_the_garbage_but_still_receives_everything() -> None:
    host = HostEnd(lenient=False)
    fault = Fault(FaultKind.GARBAGE, at_message=1)
    _, ledger = await run_sim("tcp", host, AstmSimOptions(seed=12, count=2, faults=(fault,)))
    assert host.messages == results_of(ledger)
    assert any(isinstance(e, ProtocolViolation) for e in host.events)


async def test_contention_the_instrument_wins_and_the_reply_follows() -> None:
    # host timers 10x faster: its 20 s contention hold is 2 s, still longer than the
    # instrument's 1 s retry, so the instrument is first on the link
    host = HostEnd(time_scale=10.0)
    fault = Fault(FaultKind.CONTENTION, at_message=1)
    options = AstmSimOptions(seed=6, count=1, query_share=1.0, faults=(fault,))
    _, ledger = await run_sim("tcp", host, options)
    assert ledger.faults_fired == {"contention": 1}
    query, result = ledger.queries[0], ledger.acked[0]
    assert query.answered and len(query.replies) == 1
    # the host: query in, its reply's ENQ crossed ours, the instrument's result in, then reply
    received = [e for e in host.events if isinstance(e, MessageReceived | MessageSent)]
    assert [type(e).__name__ for e in received] == [
        "MessageReceived",
        "MessageReceived",
        "MessageSent",
    ]
    assert host.messages[1] == result.raw
    assert host.bytes_out().count(bytes([ENQ])) == 2  # one lost the contention, one won later


async def test_oversized_frames_reach_a_lenient_host() -> None:
    host = HostEnd(lenient=True)
    fault = Fault(FaultKind.OVERSIZED, probability=1.0, frame_text=1000)
    options = AstmSimOptions(seed=13, count=6, max_text=40, faults=(fault,))
    _, ledger = await run_sim("tcp", host, options)
    assert host.messages == results_of(ledger) and len(ledger.acked) == 6
    frames = frames_in(host.bytes_in())
    assert len(frames) == 6  # each message merged into one frame...
    long = [f for f in frames if len(f) > MAX_FRAME]
    assert long and ledger.faults_fired["oversized"] == len(long)  # ...over 247 bytes if long
    assert not [e for e in host.events if isinstance(e, ProtocolViolation)]


async def test_a_strict_host_refuses_oversized_frames_and_the_clean_resend_lands() -> None:
    host = HostEnd(lenient=False)
    fault = Fault(FaultKind.OVERSIZED, probability=1.0, frame_text=1000)
    options = AstmSimOptions(seed=13, count=6, max_text=40, faults=(fault,))
    _, ledger = await run_sim("tcp", host, options)
    assert host.messages == results_of(ledger) and len(ledger.acked) == 6
    assert len(ledger.failures) == ledger.faults_fired["oversized"] > 0


# --- the pure parts --------------------------------------------------------------------------


def test_parse_fault_reads_names_triggers_and_options() -> None:
    assert parse_fault("bad_checksum@3") == Fault(FaultKind.BAD_CHECKSUM, at_message=3)
    assert parse_fault("garbage:0.25") == Fault(FaultKind.GARBAGE, probability=0.25)
    assert parse_fault("stall@2,seconds=1.5,then_close=true") == Fault(
        FaultKind.STALL, at_message=2, seconds=1.5, then_close=True
    )
    assert parse_fault("disconnect") == Fault(FaultKind.DISCONNECT, at_message=1)
    for bad in ("jitter@1", "stall@x", "stall@1,colour=red", "garbage:2", "stall@1,seconds"):
        with pytest.raises(ConfigError):
            parse_fault(bad)


def test_query_faults_only_strike_queries() -> None:
    rng = random.Random(0)
    storm = Fault(FaultKind.NAK_STORM, probability=1.0)
    assert storm.fires(1, rng, is_query=True) and not storm.fires(1, rng, is_query=False)
    once = Fault(FaultKind.GARBAGE, at_message=2)
    assert [once.fires(n, rng, is_query=False) for n in (1, 2, 3)] == [False, True, False]


def test_the_wire_rewrite_spoils_only_the_first_transmission() -> None:
    wire = FaultWire(random.Random(0))
    wire.begin_message((Fault(FaultKind.BAD_CHECKSUM, at_message=1),))
    frame = b"\x021H|\\^&\r\x03" + b"%02X" % (sum(b"1H|\\^&\r\x03") % 256) + b"\r\n"
    first = wire.rewrite(frame).actions
    assert first == [Write(spoil_checksum(frame))] and spoil_checksum(frame) != frame
    assert wire.rewrite(frame).actions == [Write(frame)]
    assert wire.fired == [FaultKind.BAD_CHECKSUM]


def test_the_wire_rewrite_pauses_or_hangs_up_before_the_chosen_frame() -> None:
    frames = [b"\x02" + bytes([0x31 + i]) + b"AB\x17" + b"00\r\n" for i in range(3)]
    wire = FaultWire(random.Random(0))
    wire.begin_message((Fault(FaultKind.STALL, at_message=1, frame=1, seconds=2.0),))
    assert wire.rewrite(frames[0]).actions == [Write(frames[0])]
    assert wire.rewrite(frames[1]).actions == [Pause(2.0), Write(frames[1])]
    assert wire.rewrite(frames[1]).actions == [Write(frames[1])]  # a retransmission: no stall
    wire.begin_message((Fault(FaultKind.DISCONNECT, at_message=1, frame=1),))
    assert wire.rewrite(frames[0] + bytes([EOT])).actions == [Write(frames[0]), Write(b"\x04")]
    assert wire.rewrite(frames[1] + bytes([EOT])).actions == [HangUp()]


def test_query_message_is_a_standard_request_for_one_specimen() -> None:
    from datetime import UTC, datetime

    raw = query_message("S123", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), sender="X", serial="9")
    assert raw == (b"H|\\^&|||X^9|||||||P|LIS2-A2|20240102040405\rQ|1|^S123||ALL||||||||O\rL|1|N\r")
