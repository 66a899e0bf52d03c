"""The share of a serial line's rate an ASTM E1381 link reaches, at 9600 and 115200 baud.

Ours: a paced instrument (``bench.paced_pty``, a child process) sends realistic E1394 messages
(H, P, O, 5-25 R, L; 200-2000 bytes) back to back in sessions over a pty pair; the gateway's
real host driver (``AstmHostDriver`` with the generic LIS2-A2 profile) reads the other end
through the real ``serial://`` transport and ACKs each frame. The share is the useful E1394
bytes delivered and acknowledged per second over the line's byte rate (baud / 10, 8N1).

Where the rest goes is reported as shares of the same elapsed time: E1381 framing on the
instrument's line (STX, FN, ETB/ETX, checksum, CR LF per frame; ENQ and EOT per session), the
ACK bytes crossing back, and the turnaround (host processing and scheduling beyond the ACK's
own byte time). The sink keeps messages in memory: a real store adds its commit time to the
turnaround of each message's last frame.

Peers: the theoretical maximum for the same messages, E1381 framing alone with no
turnaround; and astm-2025 (python-astm fork) client to its own server over a TCP relay paced
the same way. astm-2025 cannot send a byte on Python 3 as shipped (``astm/asynclib.py`` line
909 calls the Python 2 builtin ``buffer``), so its child gets a one-line shim for it; its
encoder only takes bytes values on Python 3 (``astm/codec.py`` line 255 recurses forever on
str), which also defeats its bulk mode (it compares the record type with the str ``'L'``), so
it sends one record per frame, all messages in one session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import REPO
from bench.paced_pty import BITS_PER_BYTE, InstrumentReport
from bench.report import Figure, Reporter, fmt
from drivers.analysers.astm_host import AstmHostDriver
from drivers.analysers.profiles.astm_generic import GENERIC
from drivers.model import InboundMessage
from drivers.protocols.astm.frames import encode_frames
from drivers.protocols.astm.records import encode_message
from drivers.transports import connector_for
from simulators.astm_models import SimSample
from simulators.astm_models.astm_generic import MODEL as GENERIC_MODEL
from simulators.national_id import make_fnr
from simulators.pty import PtyPair

NAME = "serial"
BAUDRATES = (9600, 115200)
#: E1381 overhead of one frame: STX, FN, ETB or ETX, two checksum characters, CR, LF
FRAME_OVERHEAD = 7
#: per session: ENQ and EOT
SESSION_OVERHEAD = 2
PEER_CEILING = "E1381 framing ceiling"
PEER_LIBRARY = "astm-2025 (buffer shim), paced TCP"

#: (code, unit, low, high, decimals): a chemistry and haematology menu
_TESTS: tuple[tuple[str, str, float, float, int], ...] = (
    ("NA", "mmol/L", 133, 148, 0),
    ("K", "mmol/L", 3.2, 5.6, 1),
    ("CL", "mmol/L", 96, 110, 0),
    ("CREA", "µmol/L", 45, 140, 0),
    ("UREA", "mmol/L", 2.5, 9.0, 1),
    ("GLU", "mmol/L", 3.5, 12.0, 1),
    ("CRP", "mg/L", 1, 80, 0),
    ("ALB", "g/L", 30, 50, 0),
    ("ALAT", "U/L", 8, 70, 0),
    ("ASAT", "U/L", 10, 60, 0),
    ("ALP", "U/L", 35, 130, 0),
    ("GT", "U/L", 8, 90, 0),
    ("BILI", "µmol/L", 3, 30, 0),
    ("CA", "mmol/L", 2.1, 2.6, 2),
    ("MG", "mmol/L", 0.7, 1.0, 2),
    ("PHOS", "mmol/L", 0.8, 1.5, 2),
    ("CHOL", "mmol/L", 3.0, 8.0, 1),
    ("HDL", "mmol/L", 0.8, 2.5, 1),
    ("LDL", "mmol/L", 1.5, 5.5, 1),
    ("TG", "mmol/L", 0.5, 4.0, 1),
    ("HBA1C", "mmol/mol", 30, 80, 0),
    ("HGB", "g/dL", 10, 17, 1),
    ("WBC", "10^9/L", 3.5, 11, 1),
    ("PLT", "10^9/L", 140, 400, 0),
    ("RBC", "10^12/L", 3.9, 5.7, 2),
    ("HCT", "%", 34, 50, 1),
    ("MCV", "fL", 80, 100, 0),
    ("FERR", "µg/L", 15, 300, 0),
)


@dataclass(frozen=True, slots=True)
class Plan:
    """How many messages at one baud rate, and how many go in one session (ENQ..EOT)."""

    messages: int
    per_session: int


def plan_for(baudrate: int, *, quick: bool) -> Plan:
    """About 4 s of line time per measurement in quick runs, 20 s otherwise."""
    if baudrate <= 9600:
        return Plan(4, 2) if quick else Plan(20, 4)
    return Plan(40, 4) if quick else Plan(200, 4)


def realistic_messages(count: int, seed: int) -> list[bytes]:
    """``count`` generic-profile messages (H, P, O, 5-25 R, L) of 200-2000 bytes each."""
    rng = random.Random(seed)
    when = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
    out = []
    for n in range(count):
        tests = rng.sample(_TESTS, k=rng.randint(5, 25))
        sample = SimSample(
            specimen_id=str(rng.randrange(10**9, 10**10)),
            patient_id=make_fnr(rng),
            operator_id=f"op{rng.randrange(1, 40):02d}",
            performed_at=when,
            values=tuple(
                (code, f"{rng.uniform(low, high):.{decimals}f}", unit)
                for code, unit, low, high, decimals in tests
            ),
            instrument_serial=f"SN{n % 7:05d}",
        )
        message = encode_message(GENERIC_MODEL.message(sample), encoding=GENERIC.encoding)
        if not 200 <= len(message) <= 2000:
            raise AssertionError(f"message of {len(message)} bytes is outside 200-2000")
        out.append(message)
    return out


def sessions_of(messages: list[bytes], per_session: int) -> list[list[bytes]]:
    return [messages[i : i + per_session] for i in range(0, len(messages), per_session)]


def framing_bytes(messages: list[bytes], per_session: int) -> int:
    """E1381 bytes around the messages: frame overhead, ENQ and EOT."""
    frames = sum(len(encode_frames(m)) for m in messages)
    sessions = len(sessions_of(messages, per_session))
    return frames * FRAME_OVERHEAD + sessions * SESSION_OVERHEAD


def framing_ceiling(messages: list[bytes], per_session: int) -> float:
    """The share of the line the messages fill when framing is the only cost (no turnaround)."""
    useful = sum(len(m) for m in messages)
    return useful / (useful + framing_bytes(messages, per_session))


@dataclass(frozen=True, slots=True)
class LineUse:
    """How one run used the line, as shares of its elapsed time."""

    baudrate: int
    useful_bytes: int
    elapsed_s: float
    instrument_bytes: int
    host_bytes: int
    reply_turnaround_s: float = 0.0

    def share(self, count: int) -> float:
        """The share of the elapsed time ``count`` bytes occupy the line."""
        return count * BITS_PER_BYTE / self.baudrate / self.elapsed_s

    @property
    def useful_share(self) -> float:
        return self.share(self.useful_bytes)

    @property
    def framing_share(self) -> float:
        return self.share(self.instrument_bytes - self.useful_bytes)

    @property
    def ack_share(self) -> float:
        return self.share(self.host_bytes)

    @property
    def turnaround_share(self) -> float:
        return 1.0 - self.useful_share - self.framing_share - self.ack_share


#: no measurement takes this long; a child still running then is stuck
CHILD_TIMEOUT_S = 600.0


async def _communicate(child: asyncio.subprocess.Process, job: bytes) -> tuple[bytes, bytes]:
    """Send the job, collect the output; a child that outlives ``CHILD_TIMEOUT_S`` is killed."""
    try:
        async with asyncio.timeout(CHILD_TIMEOUT_S):
            out, err = await child.communicate(job)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    return out, err or b""


# --- ours: paced instrument on a pty, the real host driver on the serial transport -----------


class _CheckingSink:
    """Keeps count of stored messages; a message the driver could not decode is a bench error."""

    def __init__(self) -> None:
        self.messages = 0
        self.observations = 0
        self.errors: list[str] = []

    async def ingest(self, message: InboundMessage) -> _Stored:
        self.messages += 1
        self.observations += len(message.observations)
        if message.error:
            self.errors.append(f"{message.error_field}: decode failed")
        return _Stored()

    def connection_changed(
        self, instrument_id: str, connected: bool, detail: str, state: object = None
    ) -> None:
        pass


@dataclass(frozen=True, slots=True)
class _Stored:
    quarantined: bool = False
    error: str = ""
    test_message: bool = False


async def measure_ours(baudrate: int, messages: list[bytes], per_session: int) -> LineUse:
    """Run the paced instrument against ``AstmHostDriver`` over ``serial:///dev/pts/N``."""
    sink = _CheckingSink()
    driver = AstmHostDriver("bench-serial", GENERIC)
    job = {
        "baudrate": baudrate,
        "sessions": [[m.decode("latin-1") for m in s] for s in sessions_of(messages, per_session)],
    }
    with PtyPair() as pair:
        connector = connector_for(pair.url(baudrate))
        stream = await connector.connect()
        host = asyncio.create_task(driver.serve(stream, sink))
        try:
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.paced_pty",
                "instrument",
                str(pair.master_fd),
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=(pair.master_fd,),
            )
            out, _ = await _communicate(child, json.dumps(job).encode())
            if child.returncode != 0:
                raise RuntimeError(f"paced instrument exited with {child.returncode}")
        finally:
            host.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await host
            await stream.aclose()
            await connector.aclose()
    report = InstrumentReport(**json.loads(out))
    if report.failed or len(report.sent_at) != len(messages):
        raise RuntimeError(f"{len(report.sent_at)} of {len(messages)} messages acknowledged")
    if report.frames_refused or report.violations:
        # a clean pty never corrupts a byte: a NAK or a violation is a fault to look into
        raise RuntimeError(
            f"{report.frames_refused} frame(s) NAKed, {report.violations} link violation(s)"
        )
    if sink.errors or sink.messages != len(messages):
        raise RuntimeError(f"host stored {sink.messages} messages; errors {sink.errors[:3]}")
    return LineUse(
        baudrate=baudrate,
        useful_bytes=sum(len(m) for m in messages),
        elapsed_s=report.sent_at[-1] - report.started,
        instrument_bytes=report.tx_bytes_at_sent[-1],
        host_bytes=report.rx_bytes_at_sent[-1],
        reply_turnaround_s=report.turnaround_s,
    )


# --- the peer: astm-2025's client and server through a paced TCP relay, in a child ------------


def peer_main() -> None:
    """Child process: astm-2025 client -> paced relay -> astm-2025 server; JSON job on stdin."""
    from astm import asynclib, client, server

    job = json.load(sys.stdin)
    if "buffer" not in vars(asynclib):  # asynclib.py:909 calls Python 2's buffer()
        asynclib.buffer = lambda data, offset, size: data[offset : offset + size]
    received = [0]

    class Counting(server.BaseRecordsDispatcher):  # type: ignore[misc]
        def _default_handler(self, record: Any) -> None:
            received[0] += 1

    host = server.Server("127.0.0.1", 0, dispatcher=Counting)
    host_port = str(host.socket.getsockname()[1])
    relay = subprocess.Popen(
        [sys.executable, "-m", "bench.paced_pty", "relay", str(job["baudrate"]), host_port],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert relay.stdout is not None
    relay_port = int(relay.stdout.readline().split()[1])
    # the peer's documented record form: a list of fields; bytes values pass through as they are
    records = [
        line.split(b"|")
        for message in job["messages"]
        for line in message.encode("latin-1").split(b"\r")
        if line
    ]
    acks: list[bool] = []
    ended = [0.0]

    def emitter() -> Any:
        for record in records:
            acks.append(bool((yield record)))
        ended[0] = time.perf_counter()

    started = time.perf_counter()
    client.Client(emitter, "127.0.0.1", relay_port, flow_map=None)
    deadline = started + 600
    while not ended[0] or received[0] < len(records):
        asynclib.loop(timeout=0.001, count=1)
        if time.perf_counter() > deadline:
            raise SystemExit("astm-2025 peer did not finish")
    asynclib.close_all()
    relay.wait(timeout=30)
    result = {"started": started, "ended": ended[0], "acks": sum(acks), "records": received[0]}
    sys.stdout.write(json.dumps(result) + "\n")


async def measure_peer(baudrate: int, messages: list[bytes]) -> float | None:
    """astm-2025's share of the line for the same messages, or None when it is not installed."""
    code = "from bench.astm_serial import peer_main; peer_main()"
    job = {"baudrate": baudrate, "messages": [m.decode("latin-1") for m in messages]}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await _communicate(child, json.dumps(job).encode())
    if child.returncode != 0:
        if b"No module named 'astm'" in err:
            return None
        raise RuntimeError(f"astm-2025 peer failed: {err.decode(errors='replace')[-400:]}")
    result = json.loads(out)
    records = sum(len([r for r in m.split(b"\r") if r]) for m in messages)
    if result["acks"] != records or result["records"] != records:
        raise RuntimeError(f"astm-2025 peer: {result} for {records} records")
    useful = sum(len(m) for m in messages)
    elapsed = result["ended"] - result["started"]
    return float(useful * BITS_PER_BYTE / baudrate / elapsed)


# --- the report --------------------------------------------------------------------------------


def _percent(share: float) -> float:
    return share * 100


def line_use_figures(
    use: LineUse, ceiling: float, peer_share: float | None, note: str
) -> list[Figure]:
    """The figures of one baud rate: the share against both peers, then where the rest went."""
    b = use.baudrate
    share = _percent(use.useful_share)
    figures = [
        Figure(NAME, f"line_share_{b}", share, "%", PEER_CEILING, _percent(ceiling), note=note)
    ]
    if peer_share is not None:
        figures.append(
            Figure(
                NAME, f"line_share_{b}_vs_astm_2025", share, "%", PEER_LIBRARY, _percent(peer_share)
            )
        )
    turnaround = use.turnaround_share
    if turnaround < -0.01:
        raise AssertionError(f"bytes crossed the line faster than {b} baud: pacing is broken")
    ack_byte_ms = BITS_PER_BYTE / b * 1000
    figures += [
        Figure(
            NAME,
            f"useful_rate_{b}",
            use.useful_bytes / use.elapsed_s,
            "B/s",
            note=f"the line carries {b // BITS_PER_BYTE} B/s",
        ),
        Figure(
            NAME,
            f"framing_share_{b}",
            _percent(use.framing_share),
            "%",
            note="STX FN ETB/ETX C1 C2 CR LF a frame, ENQ EOT a session",
        ),
        Figure(
            NAME,
            f"ack_wire_share_{b}",
            _percent(use.ack_share),
            "%",
            note="the ACK bytes crossing back",
        ),
        Figure(
            NAME,
            f"turnaround_share_{b}",
            _percent(max(turnaround, 1e-9)),
            "%",
            note="waiting beyond the ACK byte: host processing, storing, scheduling",
        ),
        Figure(
            NAME,
            f"reply_turnaround_{b}",
            use.reply_turnaround_s * 1000,
            "ms",
            note=f"median, last byte out -> reply in; the ACK byte alone {ack_byte_ms:.3f} ms",
        ),
    ]
    return figures


async def _run(reporter: Reporter, quick: bool) -> None:
    for baudrate in BAUDRATES:
        plan = plan_for(baudrate, quick=quick)
        messages = realistic_messages(plan.messages, seed=baudrate)
        sizes = [len(m) for m in messages]
        ours = await measure_ours(baudrate, messages, plan.per_session)
        peer = await measure_peer(baudrate, messages)
        if peer is None:
            reporter.say("serial: astm-2025 is not installed; its figure is left out")
        note = (
            f"{len(messages)} messages of {min(sizes)}-{max(sizes)} B, "
            f"{plan.per_session} a session, {fmt(ours.elapsed_s)} s"
        )
        ceiling = framing_ceiling(messages, plan.per_session)
        for figure in line_use_figures(ours, ceiling, peer, note):
            reporter.emit(figure)


def run(reporter: Reporter, *, quick: bool, directory: Path) -> None:
    reporter.say(
        "serial: paced instrument (child) -> pty -> serial:// -> AstmHostDriver; "
        f"{BITS_PER_BYTE} bits a byte (8N1); shares are of the elapsed time"
    )
    asyncio.run(_run(reporter, quick))
