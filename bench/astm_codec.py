"""ASTM codec bench: E1394 decode, E1381 framing and the host Link against astm-2025 and astmio."""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.common import REPO, Plan
from bench.corpus import corpus_dir
from bench.report import Figure, Reporter, fmt, median, spread
from drivers.protocols.astm.events import MessageReceived
from drivers.protocols.astm.frames import ENQ, EOT, FrameAssembler, encode_frames
from drivers.protocols.astm.link import Link
from drivers.protocols.astm.records import parse_message

NAME = "astm"
CORPUS = corpus_dir("astm")
#: the second peer: same top-level package name ``astm`` as astm-2025, so measured in a child
ASTMIO = "astmio==1.0.0a3"
#: how the Link bench reads the wire: as a serial or TCP transport would hand it over
CHUNK = 4096
GENERATED = 40

Step = Callable[[], int]
"""One pass over the workload; returns how many units (records, frames, messages) it handled."""


# --- the workload ---------------------------------------------------------------------------------


def corpus_messages() -> list[bytes]:
    """A few real messages in default delimiters that also parse strictly (one has escapes)."""
    if not CORPUS.is_dir():
        return []
    out: list[bytes] = []
    for name in (
        "roche_cobas_e411_multiframe__ruby-astm.raw.bin",
        "stago_sta_satellite_max__ruby-astm.raw.bin",
        "sysmex_xn550__senaite.astm.txt",
        "horiba_pentra_xlr__senaite.astm.txt",
        "siemens_dca_vantage__senaite.astm.txt",
    ):
        raw = (CORPUS / name).read_bytes()
        assembler = FrameAssembler(lenient=True)
        parts = raw.split(b"\x02")[1:]
        texts = [assembler.feed(b"\x02" + part.rstrip(b"\x04\x05")) for part in parts]
        out.append(b"".join(t for t in texts if t))
    return out


def generated_message(rng: random.Random, index: int) -> bytes:
    """An H, P, O, 5-25 R (some with a C) and L, as a chemistry analyser sends a patient."""
    stamp = f"2025{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}{rng.randrange(24):02d}0000"
    tests = [f"T{rng.randrange(100):02d}" for _ in range(rng.randrange(5, 26))]
    lines = [
        f"H|\\^&|||Trygg-Sim^1.0^SN{index:05d}|||||LIS||P|E1394-97|{stamp}",
        f"P|1||PID{rng.randrange(10**6):06d}||Nordmann^Kari^M||1980{rng.randrange(1, 13):02d}01|F",
        f"O|1|S{rng.randrange(10**8):08d}||" + "\\".join(f"^^^{t}" for t in tests) + f"|R|{stamp}"
        "|||||N||||Serum||||||||||F",
    ]
    for number, test in enumerate(tests, 1):
        value = f"{rng.uniform(0.1, 400):.{rng.randrange(3)}f}"
        flag = rng.choice("NNNNHL")
        lines.append(
            f"R|{number}|^^^{test}^1|{value}|mmol/L|3.5 to 5.5|{flag}||F||op{index % 7}||{stamp}"
        )
        if flag != "N":
            lines.append(f"C|1|I|Flag {flag} checked|G")
    lines.append("L|1|N")
    return ("\r".join(lines) + "\r").encode("latin-1")


@dataclass(frozen=True)
class Workload:
    messages: list[bytes]
    records: int
    frames: int
    session: bytes  # ENQ, every message framed (numbers run on), EOT

    @property
    def chunks(self) -> list[bytes]:
        return [self.session[i : i + CHUNK] for i in range(0, len(self.session), CHUNK)]


def build_workload(seed: int = 1394) -> Workload:
    rng = random.Random(seed)
    return build_workload_from(
        corpus_messages() + [generated_message(rng, i) for i in range(GENERATED)]
    )


def build_workload_from(messages: list[bytes]) -> Workload:
    frames: list[bytes] = []
    for message in messages:
        frames += encode_frames(message, first_number=(len(frames) + 1) % 8)
    session = bytes([ENQ]) + b"".join(frames) + bytes([EOT])
    records = sum(len(parse_message(m)) for m in messages)
    return Workload(messages, records, len(frames), session)


# --- our contenders -------------------------------------------------------------------------------


def ours_decode(work: Workload) -> Step:
    messages = work.messages

    def step() -> int:
        return sum(len(parse_message(m)) for m in messages)

    return step


def ours_framing(work: Workload) -> Step:
    messages = work.messages
    assembler = FrameAssembler()

    def step() -> int:
        count = 0
        for message in messages:
            assembler.reset()
            frames = encode_frames(message)
            for frame in frames:
                assembler.feed(frame)
            count += len(frames)
        return count

    return step


def ours_link_messages(chunks: Sequence[bytes]) -> list[bytes]:
    link = Link("host", now=0.0)
    out: list[bytes] = []
    for chunk in chunks:
        link.receive_data(chunk, 0.0)
        link.data_to_send()
        while (event := link.next_event()) is not None:
            if isinstance(event, MessageReceived):
                out.append(event.message)
    return out


def ours_link(work: Workload) -> Step:
    chunks = work.chunks
    return lambda: len(ours_link_messages(chunks))


# --- peer contenders (``astm`` is astm-2025 in this process, astmio in the child) ----------------


def peer_framed(codec: Any, message: bytes) -> list[bytes]:
    """The peer's framing: its one-frame form of the message, then its ``split`` at 247 bytes."""
    data = b"1" + message + b"\x03"
    return list(codec.split(b"\x02" + data + codec.make_checksum(data) + b"\r\n", 247))


def peer_unframed(codec: Any, frames: list[bytes]) -> bytes:
    """The peer's way back: check each frame's checksum, then its ``join``; the joined text."""
    for frame in frames:
        if codec.make_checksum(frame[1:-4]) != frame[-4:-2]:
            raise ValueError("peer checksum mismatch")
    return bytes(codec.join(frames)[2:-5])


def peer_decode(codec: Any, work: Workload) -> Step:
    messages = work.messages
    decode = codec.decode_frame  # a frame's text without FN: the records, split and decoded

    def step() -> int:
        return sum(len(decode(m, "latin-1")[1]) for m in messages)

    return step


def peer_framing(codec: Any, work: Workload) -> Step:
    messages = work.messages

    def step() -> int:
        count = 0
        for message in messages:
            frames = peer_framed(codec, message)
            peer_unframed(codec, frames)
            count += len(frames)
        return count

    return step


def frame_aligned(session: bytes) -> list[bytes]:
    """The session cut at frame boundaries: ENQ, each frame, EOT (a kinder read pattern)."""
    frames = [b"\x02" + part for part in session[1:-1].split(b"\x02")[1:]]
    return [session[:1], *frames, session[-1:]]


def peer_link_messages(server: ModuleType, chunks: Sequence[bytes]) -> list[bytes]:
    """astm-2025's RequestHandler, its socket reads replaced by the chunks; joined texts."""
    received: list[bytes] = []
    feed: deque[bytes] = deque()

    class Handler(server.RequestHandler):  # type: ignore[name-defined,misc]
        def recv(self, size: int) -> bytes:
            return feed.popleft()

        def push(self, data: bytes) -> None:
            pass

    handler = Handler(None, received.append)
    for chunk in chunks:
        feed.append(chunk)
        handler.handle_read()
    return [m[2:-5] for m in received]


def peer_link_reads(server: ModuleType, work: Workload) -> tuple[list[bytes] | None, str]:
    """The reads the peer's link copes with: 4 KiB if it can, else frame-aligned; and why."""
    try:
        if peer_link_messages(server, work.chunks) == work.messages:
            return work.chunks, ""
        why = "4 KiB reads give other messages"
    except Exception as exc:  # a peer's bug must not stop the bench
        why = f"4 KiB reads fail: {type(exc).__name__}: {exc}"
    aligned = frame_aligned(work.session)
    try:
        if peer_link_messages(server, aligned) == work.messages:
            return aligned, why
    except Exception as exc:
        why += f"; frame-aligned reads fail: {type(exc).__name__}"
    return None, why


def check_peer(codec: Any, work: Workload) -> dict[str, str]:
    """Which peer codec workloads give our answers; the reason for each that does not."""
    problems: dict[str, str] = {}
    ours = [len(parse_message(m)) for m in work.messages]
    if ours != [len(codec.decode_frame(m, "latin-1")[1]) for m in work.messages]:
        problems["decode"] = "record counts differ from ours"
    try:
        if any(peer_unframed(codec, peer_framed(codec, m)) != m for m in work.messages):
            problems["framing"] = "round trip changes the message"
    except (ValueError, AssertionError) as exc:
        problems["framing"] = f"round trip fails: {exc}"
    return problems


# --- measuring ------------------------------------------------------------------------------------


def plan_for(quick: bool) -> Plan:
    return Plan(quick, 0.1, 3, 0.25) if quick else Plan(quick, 0.5, 7, 1.0)


def window_rate(step: Step, seconds: float) -> float:
    """Units per second of ``step`` called back to back for ``seconds``."""
    units, start = 0, time.perf_counter()
    end = start + seconds
    while (now := time.perf_counter()) < end:
        units += step()
    return units / (now - start)


def interleaved(steps: dict[str, Step], plan: Plan) -> dict[str, list[float]]:
    """Windows of each contender in turn, so load on the machine hits all of them alike."""
    for step in steps.values():
        window_rate(step, plan.warmup_s)
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(plan.windows):
        for name, step in steps.items():
            rates[name].append(window_rate(step, plan.window_s))
    return rates


@dataclass(frozen=True)
class Metric:
    key: str  # decode, framing, link
    metric: str
    unit: str
    scale: Callable[[Workload], float]  # from the step's units/s to this metric's unit


METRICS = [
    Metric("decode", "e1394 decode", "messages/s", lambda w: len(w.messages) / w.records),
    Metric("decode", "e1394 decode records", "records/s", lambda w: 1.0),
    Metric("framing", "e1381 encode+decode frames", "frames/s", lambda w: 1.0),
    Metric(
        "framing",
        "e1381 encode+decode",
        "MB/s",
        lambda w: sum(map(len, w.messages)) / w.frames / 1e6,
    ),
    Metric(
        "link", "host link, 4 KiB reads", "MB/s", lambda w: len(w.session) / len(w.messages) / 1e6
    ),
    Metric("link", "host link messages", "messages/s", lambda w: 1.0),
]


def measure_in_process(
    work: Workload, plan: Plan, reporter: Reporter
) -> dict[str, dict[str, list[float]]]:
    """{workload: {contender: rates}} for us and astm-2025 (where it imports and agrees); the
    link peer's name says so when it only copes with frame-aligned reads."""
    ours = {"decode": ours_decode(work), "framing": ours_framing(work), "link": ours_link(work)}
    peer: dict[str, Step] = {}
    link_peer = "astm-2025"
    try:
        import astm
        from astm import codec, server
    except ImportError as exc:
        reporter.say(f"  astm-2025 unavailable: {exc}")
    else:
        reporter.say(f"  astm-2025 from {Path(astm.__file__).parent}")
        problems = check_peer(codec, work)
        for key, problem in problems.items():
            reporter.say(f"  astm-2025 {key}: not comparable ({problem})")
        if "decode" not in problems:
            peer["decode"] = peer_decode(codec, work)
        if "framing" not in problems:
            peer["framing"] = peer_framing(codec, work)
        reads, why = peer_link_reads(server, work)
        if why:
            reporter.say(f"  astm-2025 link: {why}")
        if reads is not None:
            peer["link"] = lambda: len(peer_link_messages(server, reads))
            if reads is not work.chunks:
                link_peer = "astm-2025 (frame-aligned reads)"
    out: dict[str, dict[str, list[float]]] = {}
    for key, step in ours.items():
        steps = {"trygg": step}
        if key in peer:
            steps[link_peer if key == "link" else "astm-2025"] = peer[key]
        out[key] = interleaved(steps, plan)
    return out


def fetch_astmio(directory: Path, reporter: Reporter) -> Path | None:
    """The astmio wheel, downloaded once into ``directory`` (pip, no dependencies)."""
    cache = directory / "bench-peer-wheels"
    wheels = sorted(cache.glob("astmio-*.whl"))
    if not wheels and os.environ.get("TRYGG_BENCH_OFFLINE"):
        reporter.say("  astmio unavailable: TRYGG_BENCH_OFFLINE is set (no download)")
        return None
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", ASTMIO, "--no-deps", "--quiet"]
        command += ["--timeout", "10", "--retries", "1", "-d", str(cache)]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            reporter.say(f"  astmio unavailable: pip download failed ({type(exc).__name__})")
            return None
        wheels = sorted(cache.glob("astmio-*.whl"))
    return wheels[-1] if wheels else None


def measure_astmio(
    work: Workload, plan: Plan, directory: Path, reporter: Reporter
) -> dict[str, float]:
    """astmio's speed relative to ours ({workload: its rate / our rate}), from a child whose
    sys.path starts with the unpacked wheel (it cannot share a process with astm-2025)."""
    wheel = fetch_astmio(directory, reporter)
    if wheel is None:
        return {}
    with tempfile.TemporaryDirectory(dir=directory, prefix="bench-astmio-") as tmp:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(tmp)
        work_file = Path(tmp) / "workload.json"
        work_file.write_text(json.dumps([base64.b64encode(m).decode() for m in work.messages]))
        plan_args = [str(plan.warmup_s), str(plan.windows), str(plan.window_s)]
        command = [sys.executable, "-m", "bench.astm_codec", "--peer-child", tmp, str(work_file)]
        try:
            done = subprocess.run(
                command + plan_args, cwd=REPO, check=True, capture_output=True, timeout=300
            )
        except (OSError, subprocess.SubprocessError) as exc:
            reporter.say(f"  astmio unavailable: the child failed ({type(exc).__name__})")
            return {}
    answer = json.loads(done.stdout)
    reporter.say(
        f"  astmio {answer['version']} ({wheel.name}) in a child beside our code; its figures "
        "are ours scaled by the ratio found there"
    )
    for key, problem in answer["problems"].items():
        reporter.say(f"  astmio {key}: not comparable ({problem})")
    return {
        key: median(pair["astmio"]) / median(pair["trygg"]) for key, pair in answer["rates"].items()
    }


def child_main(argv: list[str]) -> int:
    """``--peer-child DIR WORKLOAD WARMUP WINDOWS WINDOW``: measure the ``astm`` found in DIR.

    astmio 1.0.0a3's ``astm/__init__.py`` imports ``astm.protocol``, which its wheel lacks, so
    ``import astm`` fails; the package is entered through a bare module shell instead, which
    loads ``astm.codec`` and ``astm.server`` without running that ``__init__``.
    """
    unpacked, work_file = Path(argv[1]), Path(argv[2])
    plan = Plan(True, float(argv[3]), int(argv[4]), float(argv[5]))
    shell = ModuleType("astm")
    shell.__path__ = [str(unpacked / "astm")]
    sys.modules["astm"] = shell
    codec = importlib.import_module("astm.codec")
    version = importlib.import_module("astm.version").__version__
    messages = [base64.b64decode(m) for m in json.loads(work_file.read_text())]
    work = build_workload_from(messages)
    problems = check_peer(codec, work)
    # Its asyncio server (astm/server.py handle_connection) reads a frame only up to the first
    # CR, so a frame holding records arrives in pieces; checked here, not assumed.
    cut = "its server reads a frame only up to the first CR"
    try:
        server = importlib.import_module("astm.server")
        got = asyncio.run(astmio_link_messages(server, work.chunks))
        if got != work.messages:
            problems["link"] = f"{cut}: {len(got)} of {len(work.messages)} messages intact"
    except Exception as exc:  # a peer's bug must not stop the bench
        problems["link"] = f"{cut}; here it raised {type(exc).__name__}"
    # Our own code runs beside astmio here, so the parent can set astmio against us as
    # measured in the same minutes, not against a figure taken under another load.
    pairs = {
        "decode": {"astmio": peer_decode(codec, work), "trygg": ours_decode(work)},
        "framing": {"astmio": peer_framing(codec, work), "trygg": ours_framing(work)},
    }
    rates = {key: interleaved(steps, plan) for key, steps in pairs.items() if key not in problems}
    sys.stdout.write(json.dumps({"version": version, "problems": problems, "rates": rates}))
    return 0


async def astmio_link_messages(server: ModuleType, chunks: Sequence[bytes]) -> list[bytes]:
    """astmio's asyncio connection handler fed the chunks through a StreamReader."""
    reader = asyncio.StreamReader()
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    received: list[bytes] = []
    await server.handle_connection(reader, _NullWriter(), received.append, "latin-1", None)
    return [m[2:-5] for m in received]


class _NullWriter:
    """Enough of an asyncio StreamWriter for astmio's handler: replies go nowhere."""

    def write(self, data: bytes) -> None:
        pass

    async def drain(self) -> None:
        pass

    def get_extra_info(self, name: str) -> str:
        return "bench"

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass


# --- the bench ------------------------------------------------------------------------------------


def run(reporter: Reporter, *, quick: bool, directory: Path) -> None:
    plan = plan_for(quick)
    work = build_workload()
    reporter.say(
        f"astm: {len(work.messages)} messages ({len(corpus_messages())} from the corpus), "
        f"{work.records} records, {work.frames} frames, {len(work.session):,} bytes on the wire; "
        f"median of {plan.windows} windows of {plan.window_s} s"
    )
    measured = measure_in_process(work, plan, reporter)
    astmio = measure_astmio(work, plan, directory, reporter)
    for metric in METRICS:
        rates = measured[metric.key]
        scale = metric.scale(work)
        ours = [r * scale for r in rates["trygg"]]
        peers = {name: median(r) * scale for name, r in rates.items() if name != "trygg"}
        if metric.key in astmio:
            peers["astmio"] = median(ours) * astmio[metric.key]
        fastest = max(peers, key=lambda n: peers[n], default=None)
        note = spread(ours)
        if len(peers) > 1:
            note += "; " + ", ".join(f"{n} {fmt(v)}" for n, v in sorted(peers.items()))
        reporter.emit(
            Figure(
                NAME,
                metric.metric,
                median(ours),
                metric.unit,
                peer=fastest,
                peer_value=None if fastest is None else peers[fastest],
                note=note,
            )
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--peer-child":
        sys.exit(child_main(sys.argv[1:]))
    sys.exit("run it as: python -m bench astm [--quick]")
