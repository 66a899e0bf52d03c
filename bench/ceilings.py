"""Ceilings: durable SQLite commit per row, raw fsync, python-hl7's MLLP server, loopback echo."""

from __future__ import annotations

import asyncio
import itertools
import os
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import hl7.mllp

from bench.common import Plan, peer_server, sample_rates, utc_now
from bench.report import Figure, Reporter, median, spread
from simulators.hl7_analyser import AnalyserSimOptions, Hl7AnalyserSim

NAME = "ceilings"
CONNECTIONS = 50
#: what the issue reported for these four on its machine (printed beside ours, never a ratio)
ISSUE_FIGURES = {
    "sqlite_commit_per_row": 3_300.0,
    "fsync": 2_300.0,
    "python_hl7_server": 700.0,
    "loopback_echo": 19_000.0,
}

_RESULT_TABLE = """
CREATE TABLE results (
    id INTEGER PRIMARY KEY,
    instrument_id TEXT NOT NULL,
    specimen_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    test_code TEXT NOT NULL,
    value TEXT NOT NULL,
    unit TEXT NOT NULL,
    state TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""


def _timed_windows(step: Callable[[], None], plan: Plan) -> list[float]:
    """Call ``step`` in a tight loop; return the rate per second of each window after warm-up."""
    deadline = time.perf_counter() + plan.warmup_s
    while time.perf_counter() < deadline:
        step()
    rates = []
    for _ in range(plan.windows):
        count, start = 0, time.perf_counter()
        end = start + plan.window_s
        while (now := time.perf_counter()) < end:
            step()
            count += 1
        rates.append(count / (now - start))
    return rates


def sqlite_commit_per_row(plan: Plan, directory: Path) -> list[float]:
    """(a) One durable commit per result: WAL, synchronous=FULL, BEGIN IMMEDIATE, INSERT, COMMIT."""
    with tempfile.TemporaryDirectory(dir=directory, prefix="bench-sqlite-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "ceiling.sqlite3", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(_RESULT_TABLE)
            conn.execute("CREATE INDEX ix_results_state ON results (state)")
            counter = itertools.count()
            stamp = utc_now().isoformat()

            def step() -> None:
                n = next(counter)
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT INTO results (instrument_id, specimen_id, patient_id, test_code, "
                    "value, unit, state, fingerprint, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        "an-001",
                        f"S{n:09d}",
                        "01017012345",
                        "CRP",
                        "12",
                        "mg/L",
                        "queued",
                        f"{n:064x}",
                        stamp,
                    ),
                )
                conn.execute("COMMIT")

            return _timed_windows(step, plan)
        finally:
            conn.close()


def fsync_rate(plan: Plan, directory: Path) -> list[float]:
    """(b) Raw fsync: overwrite 128 bytes at the start of a small file, fsync, repeat."""
    with tempfile.TemporaryDirectory(dir=directory, prefix="bench-fsync-") as tmp:
        fd = os.open(Path(tmp) / "fsync.bin", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            block = b"r" * 128

            def step() -> None:
                os.pwrite(fd, block, 0)
                os.fsync(fd)

            return _timed_windows(step, plan)
        finally:
            os.close(fd)


def sample_messages(count: int = 64, seed: int = 7) -> list[bytes]:
    """ORU^R01 messages of 5-20 results, as the simulated analysers send them."""
    sim = Hl7AnalyserSim(
        AnalyserSimOptions(
            instrument_id="ceiling",
            host="127.0.0.1",
            port=0,
            invalid_id_share=0,
            unmapped_share=0,
            seed=seed,
        )
    )
    return [sim.build_message(utc_now())[1] for _ in range(count)]


async def _drive(
    clients: list[Callable[[], Coroutine[Any, Any, None]]],
    plan: Plan,
    counter: Callable[[], float],
) -> list[float]:
    tasks = [asyncio.create_task(client()) for client in clients]
    try:
        rates = await sample_rates(
            counter, warmup_s=plan.warmup_s, windows=plan.windows, window_s=plan.window_s
        )
        for task in tasks:
            if task.done():
                task.result()  # a client that died is a failed measurement
        return rates
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def hl7_server_rate(plan: Plan, port: int, connections: int = CONNECTIONS) -> list[float]:
    """(c) python-hl7's server (child process): ``connections`` clients each send, await ACK."""
    messages = sample_messages()
    done = 0
    streams = [
        await hl7.mllp.open_hl7_connection("127.0.0.1", port, encoding="utf-8")
        for _ in range(connections)
    ]

    def client(index: int) -> Callable[[], Coroutine[Any, Any, None]]:
        reader, writer = streams[index]

        async def run() -> None:
            nonlocal done
            for payload in itertools.cycle(messages[index % len(messages) :] + messages):
                writer.writeblock(payload)
                await writer.drain()
                await reader.readblock()
                done += 1

        return run

    try:
        return await _drive([client(i) for i in range(connections)], plan, lambda: done)
    finally:
        for _, writer in streams:
            writer.close()


async def echo_rate(plan: Plan, port: int, connections: int = CONNECTIONS) -> list[float]:
    """(d) Loopback ceiling: ``connections`` clients ping-pong 16 bytes with an echo child."""
    done = 0
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]

    def client(index: int) -> Callable[[], Coroutine[Any, Any, None]]:
        reader, writer = streams[index]

        async def run() -> None:
            nonlocal done
            ping = b"ping-%011d\n" % index
            while True:
                writer.write(ping)
                await writer.drain()
                await reader.readexactly(len(ping))
                done += 1

        return run

    try:
        return await _drive([client(i) for i in range(connections)], plan, lambda: done)
    finally:
        for _, writer in streams:
            writer.close()


def measure_sqlite(plan: Plan, directory: Path) -> float:
    return median(sqlite_commit_per_row(plan, directory))


def measure_hl7(plan: Plan) -> float:
    with peer_server("hl7") as (_, port):
        return median(asyncio.run(hl7_server_rate(plan, port)))


async def _with_server(kind: str, measure: Callable[[int], Awaitable[list[float]]]) -> list[float]:
    with peer_server(kind) as (_, port):
        return await measure(port)


def run(reporter: Reporter, *, quick: bool, directory: Path) -> None:
    plan = Plan.for_ceiling(quick)
    reporter.say(
        f"ceilings: {plan.windows} windows of {plan.window_s} s after {plan.warmup_s} s warm-up; "
        f"files in {directory}; servers in a child process, {CONNECTIONS} clients in this one"
    )
    fsyncs = fsync_rate(plan, directory)
    fsync = reporter.emit(
        Figure(NAME, "fsync", median(fsyncs), "fsync/s", note=_note("fsync", fsyncs))
    )
    commits = sqlite_commit_per_row(plan, directory)
    reporter.emit(
        Figure(
            NAME,
            "sqlite_commit_per_row",
            median(commits),
            "rows/s",
            peer="fsync",
            peer_value=fsync.value,
            note=_note("sqlite_commit_per_row", commits),
        )
    )
    echoes = asyncio.run(_with_server("echo", lambda port: echo_rate(plan, port)))
    echo = reporter.emit(
        Figure(
            NAME,
            "loopback_echo",
            median(echoes),
            "round trips/s",
            note=_note("loopback_echo", echoes),
        )
    )
    hl7s = asyncio.run(_with_server("hl7", lambda port: hl7_server_rate(plan, port)))
    reporter.emit(
        Figure(
            NAME,
            "python_hl7_server",
            median(hl7s),
            "msg/s",
            peer="loopback_echo",
            peer_value=echo.value,
            note=_note("python_hl7_server", hl7s),
        )
    )


def _note(metric: str, rates: list[float]) -> str:
    issue = ISSUE_FIGURES[metric]
    return f"{spread(rates)}; issue measured ~{issue:,.0f}"
