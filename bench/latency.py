"""Latency: analyser's last byte to the LIS receiving the result, at a fixed 300 results/s."""

from __future__ import annotations

import asyncio
import contextlib
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import peer_server, utc_now
from bench.harness import LisMessage, RigOptions, instrument_id, read_lis_record, running_gateway
from bench.report import Figure, Reporter, fmt, median, percentile, spread
from drivers.protocols.hl7.ack import parse_ack
from drivers.protocols.hl7.mllp import MllpDecoder, frame
from simulators.hl7_analyser import AnalyserSimOptions, Hl7AnalyserSim

NAME = "latency"
ANALYSERS = 30
RESULTS_PER_MESSAGE = 10
MESSAGES_PER_S = 1.0  # per analyser: 30 x 1 x 10 = 300 results/s offered
TARGET_P99_MS = 250.0


@dataclass(frozen=True, slots=True)
class Timing:
    warmup_s: float
    window_s: float
    grace_s: float  # after the window: time for the last results to reach the LIS
    runs: int

    @classmethod
    def for_latency(cls, quick: bool) -> Timing:
        return cls(2.0, 8.0, 3.0, 1) if quick else cls(3.0, 12.0, 4.0, 3)


@dataclass
class SentMessage:
    sent_at: float  # time.time() right after the message's last byte went to the socket
    specimens: dict[str, int]  # specimen id -> results under it
    ack_after: float | None = None  # seconds from last byte to the gateway's ACK


@dataclass
class Ledger:
    messages: list[SentMessage] = field(default_factory=list)
    by_specimen: dict[str, SentMessage] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def paced_analyser(
    sim: Hl7AnalyserSim, ledger: Ledger, stop: asyncio.Event, rng: random.Random
) -> None:
    """Send one message every 1/MESSAGES_PER_S seconds (random phase), stamping the last byte."""
    opts = sim.options
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(opts.host, opts.port)
            break
        except OSError:
            await asyncio.sleep(0.2)
    else:
        return
    sim.connected = True
    decoder = MllpDecoder()
    interval = 1.0 / MESSAGES_PER_S
    next_at = loop.time() + rng.uniform(0, interval)
    try:
        while not stop.is_set():
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            control_id, payload, observations = sim.build_message(utc_now())
            counts: dict[str, int] = {}
            for obs in observations:
                counts[obs.specimen_id] = counts.get(obs.specimen_id, 0) + 1
            writer.write(frame(payload))
            sent = SentMessage(time.time(), counts)
            ledger.messages.append(sent)
            for specimen in counts:
                ledger.by_specimen[specimen] = sent
            await writer.drain()
            code = await _await_ack(reader, decoder, control_id)
            sent.ack_after = time.time() - sent.sent_at
            if code != "AA":
                ledger.errors.append(f"{opts.instrument_id}: ACK {code} for {control_id}")
            next_at = max(next_at + interval, loop.time())
    finally:
        sim.connected = False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _await_ack(reader: asyncio.StreamReader, decoder: MllpDecoder, control_id: str) -> str:
    while True:
        while (block := decoder.next_message()) is not None:
            ack = parse_ack(block)
            if ack.acked_control_id == control_id:
                return ack.code
        async with asyncio.timeout(30.0):  # not wait_for: in 3.11 it can swallow a cancel
            chunk = await reader.read(65536)
        if not chunk:
            raise ConnectionError("the gateway closed the connection")
        decoder.receive_data(chunk)


@dataclass(frozen=True, slots=True)
class Latencies:
    result_ms: list[float]  # per result: last byte -> the LIS received it
    message_ms: list[float]  # per analyser message: last byte -> its last result at the LIS
    ack_ms: list[float]  # per analyser message: last byte -> the gateway's ACK
    missing: int  # results sent in the window that never reached the LIS
    offered: float  # results/s sent in the window


def match(ledger: Ledger, lis: list[LisMessage], start: float, end: float) -> Latencies:
    """Pair every result the LIS accepted with the analyser message that carried it."""
    window = [m for m in ledger.messages if start <= m.sent_at < end]
    arrived: dict[int, list[float]] = {id(m): [] for m in window}
    for message in lis:
        if message.ack_code != "AA":
            continue
        for specimen, _code in message.results:
            sent = ledger.by_specimen.get(specimen)
            if sent is not None and id(sent) in arrived:
                arrived[id(sent)].append(message.received_at)
    result_ms: list[float] = []
    message_ms: list[float] = []
    missing = 0
    for sent in window:
        times = arrived[id(sent)]
        expected = sum(sent.specimens.values())
        result_ms.extend((t - sent.sent_at) * 1000 for t in times)
        missing += max(0, expected - len(times))
        if len(times) >= expected and times:
            message_ms.append((max(times) - sent.sent_at) * 1000)
    ack_ms = [m.ack_after * 1000 for m in window if m.ack_after is not None]
    offered = sum(sum(m.specimens.values()) for m in window) / (end - start)
    return Latencies(result_ms, message_ms, ack_ms, missing, offered)


def _sims(ports: list[int]) -> list[Hl7AnalyserSim]:
    return [
        Hl7AnalyserSim(
            AnalyserSimOptions(
                instrument_id=instrument_id(i),
                host="127.0.0.1",
                port=port,
                results_min=RESULTS_PER_MESSAGE,
                results_max=RESULTS_PER_MESSAGE,
                invalid_id_share=0.0,
                unmapped_share=0.0,
                seed=i,
            )
        )
        for i, port in enumerate(ports)
    ]


async def peer_ack_ms(timing: Timing) -> list[float]:
    """The same paced load against python-hl7's server (parse + create_ack): ACK latencies."""
    ledger = Ledger()
    with peer_server("hl7") as (_, port):
        stop = asyncio.Event()
        rng = random.Random(42)
        tasks = [
            asyncio.create_task(paced_analyser(sim, ledger, stop, rng))
            for sim in _sims([port] * ANALYSERS)
        ]
        await asyncio.sleep(timing.warmup_s)
        start = time.time()
        await asyncio.sleep(timing.window_s)
        end = time.time()
        stop.set()
        await asyncio.gather(*tasks)
    return [
        m.ack_after * 1000
        for m in ledger.messages
        if m.ack_after is not None and start <= m.sent_at < end
    ]


async def one_run(validate: str, directory: Path, timing: Timing) -> Latencies:
    options = RigOptions(analysers=ANALYSERS, batch_size=20, validate_messages=validate)
    ledger = Ledger()
    with tempfile.TemporaryDirectory(dir=directory, prefix="bench-latency-") as tmp:
        async with running_gateway(options, Path(tmp)) as rig:
            sims = _sims(rig.analyser_ports[:ANALYSERS])
            rng = random.Random(42)
            tasks = [
                asyncio.create_task(paced_analyser(sim, ledger, rig.stopping, rng)) for sim in sims
            ]
            rig.tasks.extend(tasks)
            await rig.wait_connected(sims)
            await rig.sleep(timing.warmup_s)
            start = time.time()
            await rig.sleep(timing.window_s)
            end = time.time()
            await rig.sleep(timing.grace_s)
        lis = read_lis_record(rig.lis_record)
    return match(ledger, lis, start, end)


def summarise(lat: Latencies) -> dict[str, float]:
    """The figures of one run (percentiles only where there are samples)."""
    out: dict[str, float] = {}
    sent = len(lat.result_ms) + lat.missing
    out["delivered_share"] = len(lat.result_ms) / sent if sent else 0.0
    if lat.result_ms:
        out["result_p50"] = percentile(lat.result_ms, 0.5)
        out["result_p99"] = percentile(lat.result_ms, 0.99)
    if lat.message_ms:
        out["message_p99"] = percentile(lat.message_ms, 0.99)
    if lat.ack_ms:
        out["analyser_ack_p50"] = percentile(lat.ack_ms, 0.5)
        out["analyser_ack_p99"] = percentile(lat.ack_ms, 0.99)
    return out


NOTES = {
    "result_p50": f"per result; target p99 < {TARGET_P99_MS:g} ms",
    "result_p99": "per result: last byte -> the LIS received it",
    "message_p99": "per analyser message: last byte -> its last result at the LIS",
    "analyser_ack_p50": "last byte -> the gateway's ACK (stored durably)",
    "analyser_ack_p99": "last byte -> the gateway's ACK (stored durably)",
    "delivered_share": "results sent in the window that reached the LIS by the end of the grace",
}


def run(reporter: Reporter, *, quick: bool, directory: Path) -> None:
    timing = Timing.for_latency(quick)
    modes = ("fast",) if quick else ("fast", "off", "full")
    reporter.say(
        f"latency: {ANALYSERS} analysers x {MESSAGES_PER_S:g} msg/s x {RESULTS_PER_MESSAGE} "
        f"results = {ANALYSERS * MESSAGES_PER_S * RESULTS_PER_MESSAGE:g} results/s offered; "
        "gateway in a child process, analysers and LIS simulator in this one; [lis] "
        f"validate_messages {', '.join(modes)}; {timing.runs} run(s) each (1 for full): "
        f"{timing.warmup_s} s warm-up, {timing.window_s} s window, {timing.grace_s} s grace. "
        "The LIS time is its record's received_at (it ACKs right after validating)."
    )
    peer_ms = asyncio.run(peer_ack_ms(timing))
    peer = (percentile(peer_ms, 0.5), percentile(peer_ms, 0.99))
    reporter.say(
        f"  peer: python-hl7's server under the same paced load acknowledges in "
        f"p50 {fmt(peer[0])} ms, p99 {fmt(peer[1])} ms"
    )
    for validate in modes:
        runs = 1 if validate == "full" else timing.runs
        lats = [asyncio.run(one_run(validate, directory, timing)) for _ in range(runs)]
        summaries = [summarise(lat) for lat in lats]
        tag = f"[validate={validate}]"
        offered = median(lat.offered for lat in lats)
        missing = sum(lat.missing for lat in lats)
        reporter.say(
            f"  {tag}: offered {fmt(offered)} results/s; {missing} result(s) not at the LIS "
            f"{timing.grace_s:g} s after the window"
        )
        for metric, note in NOTES.items():
            values = [s[metric] for s in summaries if metric in s]
            if not values:
                reporter.say(f"  {NAME} {metric}{tag}: no samples (nothing reached the LIS)")
                continue
            if len(values) > 1:
                note += f"; {spread(values)}"
            unit = "share" if metric == "delivered_share" else "ms"
            peer_name, peer_value = None, None
            if metric.startswith("analyser_ack_"):
                peer_name = f"python_hl7_server_ack_{metric[-3:]}"
                peer_value = peer[0] if metric.endswith("p50") else peer[1]
            reporter.emit(
                Figure(
                    NAME,
                    f"{metric}{tag}",
                    median(values),
                    unit,
                    peer=peer_name,
                    peer_value=peer_value,
                    note=note,
                )
            )
