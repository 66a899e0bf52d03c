"""End to end: results/s from 100 simulated analysers through the gateway to the LIS's ACK."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench import ceilings
from bench.common import Plan
from bench.harness import (
    LisMessage,
    RigOptions,
    read_lis_record,
    results_between,
    running_gateway,
)
from bench.report import Figure, Reporter, fmt, median

NAME = "e2e"
ANALYSERS = 100
#: persons in the store for the people-rules run
PEOPLE = 500


@dataclass(frozen=True, slots=True)
class Window:
    warmup_s: float
    window_s: float
    runs: int

    @classmethod
    def for_e2e(cls, quick: bool) -> Window:
        return cls(3.0, 5.0, 1) if quick else cls(5.0, 15.0, 3)

    @property
    def drain_s(self) -> float:
        return 3.0 if self.window_s < 10 else 8.0


@dataclass(frozen=True, slots=True)
class RunResult:
    lis_results_per_s: float
    lis_messages_per_s: float
    ingest_results_per_s: float
    ingest_messages_per_s: float
    gateway_cpu: float  # CPU seconds per second (cores): the gateway child and its LIS worker
    bench_cpu: float  # the same for this process (analysers + LIS)
    lis_bins: tuple[float, ...]  # LIS results per 1 s bin inside the window
    backlog_growth_per_s: float  # stored but not yet at the LIS, growth per second
    drain_results_per_s: float  # LIS results/s once the analysers stopped (forwarder alone)
    drain_first_s: float | None  # seconds from the stop to the first LIS message after it
    states: str  # results and outbox states in the store at the end of the window


async def one_run(options: RigOptions, directory: Path, window: Window) -> RunResult:
    """Start a fresh gateway, load it with every analyser at full speed, measure one window."""
    with tempfile.TemporaryDirectory(dir=directory, prefix="bench-e2e-") as tmp:
        async with running_gateway(options, Path(tmp)) as rig:
            sims = rig.add_analysers(options.analysers)
            await rig.wait_connected(sims)
            await rig.sleep(window.warmup_s)
            t0, r0, m0 = time.time(), rig.acked_results(), rig.acked_messages()
            g0, b0 = rig.gateway.cpu_seconds(), time.process_time()
            await rig.sleep(window.window_s)
            t1, r1, m1 = time.time(), rig.acked_results(), rig.acked_messages()
            g1, b1 = rig.gateway.cpu_seconds(), time.process_time()
            states = store_states(rig.directory / "gateway.sqlite3")
            await rig.stop_analysers()
            d0 = time.time()
            await rig.sleep(window.drain_s)
            d1 = time.time()
        messages = read_lis_record(rig.lis_record)
    span = t1 - t0
    in_window = [m for m in messages if m.ack_code == "AA" and t0 <= m.received_at < t1]
    lis_results = results_between(messages, t0, t1)
    bins = tuple(float(results_between(messages, t0 + i, t0 + i + 1)) for i in range(int(span)))
    ingest = (r1 - r0) / span
    return RunResult(
        lis_results_per_s=lis_results / span,
        lis_messages_per_s=len(in_window) / span,
        ingest_results_per_s=ingest,
        ingest_messages_per_s=(m1 - m0) / span,
        gateway_cpu=(g1 - g0) / span,
        bench_cpu=(b1 - b0) / span,
        lis_bins=bins,
        backlog_growth_per_s=ingest - lis_results / span,
        drain_results_per_s=_drain_rate(messages, d0, d1),
        drain_first_s=min(
            (m.received_at - d0 for m in messages if m.received_at >= d0), default=None
        ),
        states=states,
    )


def _drain_rate(messages: list[LisMessage], start: float, end: float) -> float:
    """LIS results/s from ``start`` until the backlog ran out (or ``end``)."""
    drained = [m for m in messages if m.ack_code == "AA" and start <= m.received_at < end]
    if len(drained) < 2:
        return 0.0
    last = max(m.received_at for m in drained)
    busy_until = last if end - last > 0.5 else end  # ran dry early: stop the clock there
    return sum(len(m.results) for m in drained) / max(busy_until - start, 1e-3)


def store_states(path: Path) -> str:
    """'results queued=..., ...; outbox pending=...' read from the gateway's SQLite (read-only)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        parts = []
        for table in ("results", "outbox"):
            rows = conn.execute(f"SELECT state, count(*) FROM {table} GROUP BY state").fetchall()
            parts.append(f"{table} " + (", ".join(f"{s}={n}" for s, n in sorted(rows)) or "none"))
        return "; ".join(parts)
    finally:
        conn.close()


def run(reporter: Reporter, *, quick: bool, directory: Path) -> None:
    window = Window.for_e2e(quick)
    plan = Plan.for_ceiling(quick)
    modes = ("fast", "full") if quick else ("off", "fast", "full")
    # the people rules (issue 10) on, with 500 certified persons, and the QC rules (issue 11,
    # qc=on: [[qc]] for every test, every analyser's tests in control): each beside "fast" off
    runs_by_mode: dict[tuple[str, int, bool], float] = {}
    variants = [(validate, 0, False) for validate in modes] + [
        ("fast", PEOPLE, False),
        ("fast", 0, True),
    ]
    reporter.say(
        f"e2e: {ANALYSERS} analysers (rate 0 = next message as soon as the ACK arrives, 5-20 "
        "results each) -> gateway in a child process (python -m gateway.cli run) -> LIS "
        "simulator (validate=fast); the analysers and the LIS share this process. "
        f"[lis] batch_size 20, window 8, validate_messages {', '.join(modes)}; "
        f"{window.runs} run(s) each: "
        f"{window.warmup_s} s warm-up, {window.window_s} s window, {window.drain_s} s drain"
    )
    sqlite_peer = ceilings.measure_sqlite(plan, directory)
    hl7_peer = ceilings.measure_hl7(plan)
    reporter.say(
        f"  peers measured now: one SQLite commit per row {fmt(sqlite_peer)} rows/s; "
        f"python-hl7 server {fmt(hl7_peer)} msg/s"
    )
    for validate, people, qc in variants:
        options = RigOptions(
            analysers=ANALYSERS, batch_size=20, validate_messages=validate, people=people, qc=qc
        )
        runs = [asyncio.run(one_run(options, directory, window)) for _ in range(window.runs)]
        tag = _tag(validate, people, qc)
        note = _spread_note(runs)
        runs_by_mode[(validate, people, qc)] = median(r.lis_results_per_s for r in runs)
        reporter.emit(
            Figure(
                NAME,
                f"lis_acked_results{tag}",
                median(r.lis_results_per_s for r in runs),
                "results/s",
                peer="sqlite_commit_per_row",
                peer_value=sqlite_peer,
                note=note,
            )
        )
        reporter.emit(
            Figure(
                NAME,
                f"analyser_acked_results{tag}",
                median(r.ingest_results_per_s for r in runs),
                "results/s",
                peer="sqlite_commit_per_row",
                peer_value=sqlite_peer,
            )
        )
        reporter.emit(
            Figure(
                NAME,
                f"analyser_acked_messages{tag}",
                median(r.ingest_messages_per_s for r in runs),
                "msg/s",
                peer="python_hl7_server",
                peer_value=hl7_peer,
            )
        )
        reporter.emit(
            Figure(
                NAME,
                f"lis_drain_results{tag}",
                median(r.drain_results_per_s for r in runs),
                "results/s",
                peer="sqlite_commit_per_row",
                peer_value=sqlite_peer,
                note="after the analysers stopped: the forwarder alone",
            )
        )
        reporter.emit(
            Figure(NAME, f"lis_messages{tag}", median(r.lis_messages_per_s for r in runs), "msg/s")
        )
        reporter.emit(
            Figure(
                NAME,
                f"gateway_cpu{tag}",
                median(r.gateway_cpu for r in runs),
                "cores",
                note=f"this process (analysers + LIS): {median(r.bench_cpu for r in runs):.2f}",
            )
        )
        for index, result in enumerate(runs):
            first = result.drain_first_s
            reporter.say(
                f"    run {index + 1}: store at window end: {result.states}; after the stop the "
                + (
                    "LIS got nothing"
                    if first is None
                    else f"first LIS message came in {first:.1f} s"
                )
            )

    off, on = runs_by_mode[("fast", 0, False)], runs_by_mode[("fast", PEOPLE, False)]
    qc_on = runs_by_mode[("fast", 0, True)]
    reporter.emit(
        Figure(
            NAME,
            "qc_rules_ratio",
            qc_on / off if off else 0.0,
            "x",
            note=(
                f"LIS results/s with [[qc]] for every test (qc=on) {fmt(qc_on)} / off "
                f"{fmt(off)}, same run; target: >= 0.85 (within 15 %), and >= 3,000 results/s"
            ),
        )
    )
    reporter.emit(
        Figure(
            NAME,
            "people_rules_ratio",
            on / off if off else 0.0,
            "x",
            note=(
                f"LIS results/s with the people rules on ({PEOPLE} persons) {fmt(on)} / off "
                f"{fmt(off)}, same run; target: >= 0.85 (within 15 %), and >= 3,000 results/s"
            ),
        )
    )


def _tag(validate: str, people: int, qc: bool) -> str:
    """A variant's figure suffix: ``[validate=fast]``, ``[validate=fast,people=500]``,
    ``[validate=fast,qc=on]``."""
    parts = [f"validate={validate}"]
    if people:
        parts.append(f"people={people}")
    if qc:
        parts.append("qc=on")
    return f"[{','.join(parts)}]"


def _spread_note(runs: list[RunResult]) -> str:
    bins = [b for r in runs for b in r.lis_bins]
    backlog = median(r.backlog_growth_per_s for r in runs)
    text = f"1 s bins {fmt(min(bins))}..{fmt(max(bins))}" if bins else "no bins"
    if len(runs) > 1:
        values = [r.lis_results_per_s for r in runs]
        text += f"; runs {fmt(min(values))}..{fmt(max(values))}"
    return text + f"; backlog grows {fmt(backlog)} results/s; target >= 3,000"
