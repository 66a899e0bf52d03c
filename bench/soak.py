"""The soak: N analysers send for M minutes while faults are injected; then nothing may be lost.

``python -m bench soak [--minutes 10] [--analysers 100] [--seed 9] [--postgres URL]``

A real ``trygg run`` child on a fresh store (SQLite in a temp dir, or a fresh database on a
PostgreSQL server), its LIS worker, a simulated LIS in a process of its own (it records every
message before it ACKs it: ``bench.soak_lis``), and the analysers in this process: three in
four speak HL7 v2 over MLLP, one in four ASTM E1381/E1394 (the generic LIS2-A2 profile), all
over TCP at a steady, modest rate. Faults come at seeded random moments
(``bench.soak_chaos``): idle sockets on instrument ports, LIS outages, kill -9 of the gateway
with a restart, a second ``trygg run`` on the same store.

Afterwards the senders stop, the gateway drains to the LIS (with a deadline), stops, and
``trygg audit verify`` runs. The verdict (``bench.soak_check``): every result an analyser got
a positive ACK for is at the LIS exactly once (by its identity, under one control ID), in
order per instrument, no control ID changed content, the store carries no result in two
outbox messages, every second ``trygg run`` refused to start, and the audit chain verifies.
Exit 1 when any check fails.

Analysers that could not deliver (no ACK for longer than ``blocked_s`` while the gateway
was up, e.g. behind an idle socket) are reported, not failed: whether a silent peer may
block an instrument is issue 9 item 1, and the figures show it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, func, select, text

from bench.common import REPO, children, free_ports
from bench.harness import NLK, GatewayChild, GatewayFailed, instrument_id, site_toml
from bench.report import Figure, Reporter
from bench.soak_chaos import Fault, IdleSocket, plan
from bench.soak_check import Reconciliation, ResultKey, read_arrivals, reconcile
from drivers.analysers.profiles.astm_generic import GENERIC
from drivers.transports import connector_for
from gateway.store.engine import make_engine
from gateway.store.lease import read_holder
from gateway.store.queries import summary
from gateway.store.tables import outbox, outbox_items, results
from simulators.astm_analyser import AstmAnalyserSim, AstmSimOptions
from simulators.hl7_analyser import AnalyserSimOptions, Hl7AnalyserSim

NAME = "soak"
AUDIT_VERIFY = (sys.executable, "-m", "gateway.cli", "audit", "verify")
#: a second ``trygg run`` must have given up within this
SECOND_RUN_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class SoakOptions:
    minutes: float = 10.0
    analysers: int = 100
    seed: int = 9
    #: a PostgreSQL server's admin URL: the soak creates a fresh database there and drops it
    postgres: str | None = None
    #: per analyser: HL7 messages (5-20 results) or ASTM samples (1-3 results) per second
    rate_per_s: float = 0.5
    astm_every: int = 4  # every fourth analyser speaks ASTM
    drain_timeout_s: float = 180.0
    #: no ACK for this long while the gateway was up: the analyser could not deliver
    blocked_s: float = 15.0

    @classmethod
    def quick(cls) -> SoakOptions:
        return cls(minutes=0.6, analysers=10, rate_per_s=1.0, drain_timeout_s=60.0, blocked_s=5.0)


def config_text(options: SoakOptions, store_url: str, ports: Sequence[int], lis_port: int) -> str:
    lis = [
        f'url = "tcp://127.0.0.1:{lis_port}"',
        "batch_size = 20",
        'validate_messages = "fast"',
        "window = 8",
        "ack_timeout_s = 5.0",
        "retry_initial_s = 0.1",
        "retry_max_s = 1.0",
    ]
    drivers = [
        (port, "astm_generic" if is_astm(options, index) else "hl7_mllp")
        for index, port in enumerate(ports)
    ]
    return site_toml("soak", [f'url = "{store_url}"'], lis, drivers)


def is_astm(options: SoakOptions, index: int) -> bool:
    return options.astm_every > 0 and index % options.astm_every == options.astm_every - 1


# --- the analysers ----------------------------------------------------------------------


@dataclass
class Analyser:
    """One simulated analyser and what the soak saw of it."""

    index: int
    port: int
    hl7: Hl7AnalyserSim | None = None
    astm: AstmAnalyserSim | None = None
    task: asyncio.Task[Any] | None = None
    last_count: int = 0
    last_progress: float = field(default_factory=time.time)
    blocked_s: float = 15.0
    #: (from, to): spans without a new ACK longer than ``blocked_s``
    gaps: list[tuple[float, float]] = field(default_factory=list)

    @property
    def instrument_id(self) -> str:
        return instrument_id(self.index)

    def acked_messages(self) -> int:
        if self.hl7 is not None:
            return self.hl7.ledger.acked_messages
        assert self.astm is not None
        return len(self.astm.ledger.acked)

    def acked_keys(self) -> list[ResultKey]:
        """The results this analyser got a positive ACK for, in the order of the ACKs."""
        me = self.instrument_id
        if self.hl7 is not None:
            return [(me, o.specimen_id, o.test_code) for o in self.hl7.ledger.acked]
        assert self.astm is not None
        return [
            (me, m.sample.specimen_id, code)
            for m in self.astm.ledger.acked
            for code, _, _ in m.sample.values
        ]

    def sent_messages(self) -> int:
        if self.hl7 is not None:
            return self.hl7.ledger.sent_messages
        assert self.astm is not None
        return len(self.astm.ledger.acked) + len(self.astm.ledger.failures)

    def note_progress(self, now: float) -> None:
        count = self.acked_messages()
        if count != self.last_count:
            if now - self.last_progress > self.blocked_s:
                self.gaps.append((self.last_progress, now))
            self.last_count, self.last_progress = count, now


def make_analyser(options: SoakOptions, index: int, port: int) -> Analyser:
    analyser = Analyser(index, port, blocked_s=options.blocked_s)
    if is_astm(options, index):
        analyser.astm = AstmAnalyserSim(
            GENERIC,
            AstmSimOptions(
                seed=options.seed * 1000 + index,
                count=None,
                rate_per_s=options.rate_per_s,
                operator_ids=(f"OP{index + 1}",),
                reconnect_delay_s=0.5,
                serial=f"SIM{index + 1:04d}",
            ),
        )
        analyser.task = asyncio.create_task(
            analyser.astm.run(connector_for(f"tcp://127.0.0.1:{port}")), name=f"astm-{index}"
        )
    else:
        analyser.hl7 = Hl7AnalyserSim(
            AnalyserSimOptions(
                instrument_id=instrument_id(index),
                host="127.0.0.1",
                port=port,
                rate_per_s=options.rate_per_s,
                results_min=5,
                results_max=20,
                invalid_id_share=0.0,
                unmapped_share=0.0,
                serial=f"SIM-{index + 1:04d}",
                operator_id=f"OP{index + 1}",
                seed=options.seed * 1000 + index,
                ack_timeout_s=10.0,
            )
        )
        analyser.task = asyncio.create_task(analyser.hl7.run(), name=f"hl7-{index}")
    return analyser


async def stop_tasks(tasks: Sequence[asyncio.Task[Any]], timeout_s: float = 30.0) -> int:
    """Cancel again and again (3.11's wait_for can swallow a cancellation); how many would
    not stop."""
    deadline = time.monotonic() + timeout_s
    pending = {t for t in tasks if not t.done()}
    while pending and time.monotonic() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: a failure at shutdown is not news
    return len(pending)


# --- the LIS and the gateway processes --------------------------------------------------


class LisProcess:
    """``python -m bench.soak_lis`` on one port; each start records to a new file."""

    def __init__(self, port: int, directory: Path) -> None:
        self.port = port
        self.directory = directory
        self.records: list[Path] = []
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        record = self.directory / f"lis-{len(self.records) + 1:03d}.jsonl"
        self.records.append(record)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.soak_lis",
            "--port",
            str(self.port),
            "--record",
            str(record),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(60):
            line = await self.proc.stdout.readline()
        if line.strip() != b"READY":
            raise GatewayFailed(f"the soak's LIS did not start (said {line!r})")

    async def kill(self) -> None:
        """SIGKILL: the LIS crashes or is switched off, connections and all."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()


@dataclass
class SecondRun:
    exit_code: int | None  # None: it was still running after SECOND_RUN_TIMEOUT_S
    seconds: float
    names_the_holder: bool  # its error says another gateway runs on the store
    first_kept_the_lease: bool


@dataclass
class Kill:
    at: float
    ready_at: float = 0.0
    lingering_workers: int = 0  # LIS worker children still alive 10 s after the kill


class Store:
    """The soak's reads of the gateway's store (its own connections, read only)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.url)
        return self._engine

    def holder_pid(self) -> int | None:
        """The process holding the lease now (None before the first start or when released)."""
        try:
            with self.engine.connect() as conn:
                holder = read_holder(conn)
        except Exception:  # no table yet: the first gateway is still creating the store
            return None
        return None if holder is None or holder.released_at is not None else holder.pid

    def backlog(self) -> int:
        """Results and messages not yet settled by the LIS."""
        with self.engine.connect() as conn:
            s = summary(conn)
        return (
            s.by_state.get("queued", 0)
            + s.by_state.get("sent", 0)
            + s.outbox_by_state.get("pending", 0)
            + s.outbox_by_state.get("sent", 0)
        )

    def states(self) -> str:
        with self.engine.connect() as conn:
            s = summary(conn)
        return (
            "results "
            + ", ".join(f"{k}={v}" for k, v in sorted(s.by_state.items()))
            + "; outbox "
            + ", ".join(f"{k}={v}" for k, v in sorted(s.outbox_by_state.items()))
            + f"; quarantined {s.quarantined}"
        )

    def results_in_two_messages(self) -> int:
        """Results carried by two or more outbox messages that were not rejected: each would
        have gone to the LIS under two control IDs."""
        per_result = (
            select(outbox_items.c.result_id)
            .join(outbox, outbox.c.id == outbox_items.c.outbox_id)
            .where(outbox.c.state != "rejected")
            .group_by(outbox_items.c.result_id)
            .having(func.count(func.distinct(outbox_items.c.outbox_id)) > 1)
            .subquery()
        )
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(per_result)).scalar_one())

    def states_of(self, keys: Sequence[ResultKey]) -> Counter[str]:
        """The store's state of each result in ``keys`` ("absent" when not stored)."""
        wanted = set(keys)
        found: dict[ResultKey, str] = {}
        query = select(results.c.instrument_id, results.c.specimen_id, results.c.test_code)
        with self.engine.connect() as conn:
            for row in conn.execute(query.add_columns(results.c.state)):
                key = (row.instrument_id, row.specimen_id, row.test_code)
                if key in wanted:
                    found[key] = row.state
        return Counter(found.get(k, "absent") for k in keys)

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


class Soak:
    """One soak run: the processes, the analysers, the faults and what they did."""

    def __init__(
        self, options: SoakOptions, directory: Path, store_url: str, reporter: Reporter
    ) -> None:
        self.options = options
        self.say = reporter.say
        self.directory = directory
        lis_port, *self.ports = free_ports(options.analysers + 1)
        self.config_path = directory / "soak.toml"
        self.config_path.write_text(
            config_text(options, store_url, self.ports, lis_port), encoding="utf-8"
        )
        self.store = Store(store_url)
        self.lis = LisProcess(lis_port, directory)
        # faulthandler: SIGABRT makes a gateway that will not stop log every thread's stack
        self.gateway = GatewayChild(
            self.config_path,
            directory / "gateway.log",
            append_log=True,
            extra_env={"PYTHONFAULTHANDLER": "1"},
        )
        self.slow_stop_s: float | None = None  # set when the final stop took too long
        self.stop_s = 0.0  # how long the final stop took
        self.analysers: list[Analyser] = []
        self.idle: list[IdleSocket] = []
        self.kills: list[Kill] = []
        self.second_runs: list[SecondRun] = []
        self.lis_stops = 0
        self.unexpected_exits: list[str] = []
        self.starts = 0
        self._expect_down = False

    # -- the gateway ---------------------------------------------------------------------
    def start_gateway(self) -> None:
        self.gateway.start()
        self.starts += 1

    async def wait_ready(self, timeout_s: float = 90.0) -> float:
        """Until the new gateway holds the store's lease; returns when (time.time())."""
        deadline = time.monotonic() + timeout_s
        while await asyncio.to_thread(self.store.holder_pid) != self.gateway.pid:
            self.gateway.check()
            if time.monotonic() > deadline:
                raise GatewayFailed(
                    f"the gateway did not take the store's lease within {timeout_s:g} s; its "
                    "log ends:\n" + self.gateway.log_tail()
                )
            await asyncio.sleep(0.1)
        return time.time()

    async def watch(self) -> None:
        """A gateway that exits by itself is a finding: note it, start it again."""
        proc = self.gateway.proc
        if self._expect_down or proc is None or proc.poll() is None:
            return
        self.unexpected_exits.append(f"exit code {proc.returncode}: {self.gateway.log_tail(5)}")
        kill = Kill(time.time())
        self.kills.append(kill)  # downtime, for the blocked-analyser figures
        self.start_gateway()
        kill.ready_at = await self.wait_ready()

    async def kill_gateway(self, fault: Fault) -> None:
        self._expect_down = True
        try:
            pid = self.gateway.pid
            workers = children(pid)
            kill = Kill(time.time())
            self.kills.append(kill)
            os.kill(pid, signal.SIGKILL)
            await asyncio.to_thread(self.gateway.proc.wait)  # type: ignore[union-attr]
            kill.lingering_workers = await _outlive(workers, 10.0)
            await asyncio.sleep(fault.down_s)
            self.start_gateway()
            # silent peers that reach the ports before the analysers reconnect
            for index in fault.targets:
                self.open_idle(index, fault.hold_s, race_s=30.0)
            kill.ready_at = await self.wait_ready()
        finally:
            self._expect_down = False

    async def stop_gateway(self, timeout_s: float = 20.0) -> int | None:
        """Ctrl-C; a gateway still running ``timeout_s`` later gets SIGABRT (faulthandler
        writes its threads' stacks to the log), then SIGKILL."""
        proc = self.gateway.proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        try:
            return await asyncio.to_thread(proc.wait, timeout_s)
        except subprocess.TimeoutExpired:
            self.slow_stop_s = time.monotonic() - started
        finally:
            self.stop_s = time.monotonic() - started
        proc.send_signal(signal.SIGABRT)
        try:
            return await asyncio.to_thread(proc.wait, 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return await asyncio.to_thread(proc.wait)

    async def second_run(self) -> None:
        await self.wait_ready()  # the first one holds the lease
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            "run",
            "--config",
            str(self.config_path),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "COLUMNS": "200"},
        )
        code: int | None
        try:
            async with asyncio.timeout(SECOND_RUN_TIMEOUT_S):
                _, err = await proc.communicate()
            code = proc.returncode
        except TimeoutError:
            code, err = None, b""
            proc.send_signal(signal.SIGINT)  # it started: stop it before it does harm
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        seconds = time.monotonic() - started
        holder = await asyncio.to_thread(self.store.holder_pid)
        self.second_runs.append(
            SecondRun(
                code,
                seconds,
                b"another Trygg gateway is running" in err,
                holder == self.gateway.pid
                and self.gateway.proc is not None
                and self.gateway.proc.poll() is None,
            )
        )

    # -- the other faults ----------------------------------------------------------------
    def open_idle(self, index: int, hold_s: float, *, race_s: float = 0.0) -> None:
        sock = IdleSocket(index, self.ports[index])
        sock.start(hold_s, race_s=race_s)
        self.idle.append(sock)

    async def stop_lis(self, fault: Fault) -> None:
        self.lis_stops += 1
        await self.lis.kill()
        await asyncio.sleep(fault.down_s)
        await self.lis.start()

    async def inject(self, fault: Fault) -> None:
        if fault.kind == "idle":
            for index in fault.targets:
                self.open_idle(index, fault.hold_s)
        elif fault.kind == "lis":
            await self.stop_lis(fault)
        elif fault.kind == "kill":
            await self.kill_gateway(fault)
        elif fault.kind == "second":
            await self.second_run()

    def describe(self, fault: Fault) -> str:
        names = ", ".join(instrument_id(i) for i in fault.targets)
        if fault.kind == "idle":
            return f"idle socket(s) opened to {names}, held {fault.hold_s:.0f} s"
        if fault.kind == "lis":
            return f"LIS killed, started again after {fault.down_s:.1f} s"
        if fault.kind == "kill":
            kill = self.kills[-1]
            text = (
                f"gateway killed (SIGKILL), started again after {fault.down_s:.1f} s, holding "
                f"the lease {kill.ready_at - kill.at:.1f} s after the kill"
            )
            return text + (f"; idle sockets racing to {names}" if names else "")
        second = self.second_runs[-1]
        return f"a second trygg run: exit code {second.exit_code} after {second.seconds:.1f} s"

    # -- the run -------------------------------------------------------------------------
    async def sample_progress(self) -> None:
        """Note every analyser's ACKs, on its own task: faults take seconds to inject."""
        while True:
            now = time.time()
            for analyser in self.analysers:
                analyser.note_progress(now)
            await asyncio.sleep(0.25)

    async def tick(self) -> None:
        await self.watch()
        for analyser in self.analysers:
            task = analyser.task
            if task is not None and task.done() and not task.cancelled():
                task.result()  # a simulator that crashed is the bench's bug: stop loudly

    async def sleep_until(self, moment: float) -> None:
        while (left := moment - time.monotonic()) > 0:
            await asyncio.sleep(min(0.5, left))
            await self.tick()

    async def send_with_faults(self, faults: Sequence[Fault]) -> float:
        """The sending phase; returns its length in seconds."""
        start = time.monotonic()
        sampler = asyncio.create_task(self.sample_progress(), name="progress")
        try:
            for fault in faults:
                await self.sleep_until(start + fault.at_s)
                began = time.monotonic()
                await self.inject(fault)
                self.say(f"  {began - start:6.1f} s: {self.describe(fault)}")
                await self.tick()
            await self.sleep_until(start + self.options.minutes * 60)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        return time.monotonic() - start

    async def drain(self) -> float | None:
        """Seconds until the store had nothing left for the LIS; None past the deadline."""
        start = time.monotonic()
        while time.monotonic() - start < self.options.drain_timeout_s:
            await self.watch()
            if await asyncio.to_thread(self.store.backlog) == 0:
                return time.monotonic() - start
            await asyncio.sleep(0.25)
        return None


async def _outlive(pids: Sequence[int], timeout_s: float) -> int:
    """Wait for ``pids`` to end; kill (by pid) and count those still alive after the wait."""
    deadline = time.monotonic() + timeout_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _alive(p)]
        await asyncio.sleep(0.1)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(alive)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def audit_verify(config_path: Path) -> tuple[bool, int, str]:
    """``trygg audit verify --json`` on the stopped gateway's store: (ok, rows, problem)."""
    done = subprocess.run(
        [*AUDIT_VERIFY, "--config", str(config_path), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        return False, 0, f"exit {done.returncode}: {done.stderr.strip()[-500:]}"
    ok = done.returncode == 0 and bool(report.get("ok"))
    return ok, int(report.get("rows", 0)), str(report.get("problem") or "")


# --- figures ----------------------------------------------------------------------------


def _during(kill: Kill, moment: float | None) -> bool:
    return moment is not None and kill.at - 0.5 <= moment <= (kill.ready_at or kill.at + 60)


def _downtime(kills: Sequence[Kill], start: float, end: float) -> float:
    return sum(max(0.0, min(end, k.ready_at) - max(start, k.at)) for k in kills if k.ready_at)


@dataclass
class Blocked:
    """Analysers that could not deliver: no ACK for over ``blocked_s`` while the gateway was
    up."""

    analysers: list[int] = field(default_factory=list)
    longest_s: float = 0.0
    behind_idle: int = 0  # of them, with an idle socket on their port in that span
    at_stop: int = 0  # of them, still without an ACK when the senders stopped


def blocked(soak: Soak, stopped_at: float) -> Blocked:
    out = Blocked()
    limit = soak.options.blocked_s
    for analyser in soak.analysers:
        spans = list(analyser.gaps)
        if stopped_at - analyser.last_progress > limit:
            spans.append((analyser.last_progress, stopped_at))
        worst = 0.0
        idle_overlap = False
        for begin, end in spans:
            up = (end - begin) - _downtime(soak.kills, begin, end)
            if up <= limit:
                continue
            worst = max(worst, up)
            idle_overlap = idle_overlap or any(
                s.instrument == analyser.index
                and s.connected
                and s.opened_at < end
                and (s.closed_at or stopped_at) > begin
                for s in soak.idle
            )
        if worst:
            out.analysers.append(analyser.index)
            out.longest_s = max(out.longest_s, worst)
            out.behind_idle += idle_overlap
            out.at_stop += stopped_at - analyser.last_progress > limit
    return out


def emit_figures(
    reporter: Reporter,
    soak: Soak,
    result: Reconciliation,
    *,
    sending_s: float,
    drain_s: float | None,
    stopped_at: float,
    audit: tuple[bool, int, str],
    in_two_messages: int,
    torn_lines: int,
    faults: Sequence[Fault],
) -> list[str]:
    """Print the figures; return the failed checks (empty: the soak passed)."""

    def figure(metric: str, value: float, unit: str = "count", note: str = "") -> None:
        reporter.emit(Figure(NAME, metric, value, unit, note=note))

    planned = Counter(f.kind for f in faults)
    races = sum(1 for f in faults if f.kind == "kill" and f.targets)
    acked_messages = sum(a.acked_messages() for a in soak.analysers)
    figure("analyser_acked_results", result.acked, "results")
    figure("analyser_acked_messages", acked_messages, "messages")
    figure("analyser_acked_results_per_s", result.acked / sending_s, "results/s")
    figure("lis_results", result.lis_results, "results", "distinct results at the LIS")
    figure("lis_messages", result.lis_messages, "messages", f"{result.resends} resent")
    figure(
        "lis_results_not_acked",
        result.not_acked_at_lis,
        "results",
        "at the LIS though the analyser saw no ACK: stored, then the ACK was lost; allowed",
    )
    figure("missing", len(result.missing), "results", "ACKed, never at the LIS")
    figure("duplicates", len(result.duplicates), "results", "at the LIS under 2+ control IDs")
    figure("changed_control_ids", len(result.changed))
    figure("out_of_order", len(result.out_of_order), "results")
    figure("lis_rejected", len(result.rejected), "messages")
    figure("store_results_in_two_messages", in_two_messages, "results")
    connected = sum(s.connected for s in soak.idle)
    figure(
        "faults_idle_sockets",
        len(soak.idle),
        "sockets",
        f"{planned['idle']} idle fault(s), {races} restart race(s); {connected} connected",
    )
    figure("faults_lis_stops", soak.lis_stops)
    figure("faults_gateway_kills", len(soak.kills) - len(soak.unexpected_exits))
    figure("faults_second_runs", len(soak.second_runs))
    refused = [r for r in soak.second_runs if r.exit_code not in (None, 0)]
    figure(
        "second_run_refusals",
        len(refused),
        note=(f"slowest {max(r.seconds for r in refused):.1f} s" if refused else ""),
    )
    figure("gateway_starts", soak.starts)
    figure("gateway_unexpected_exits", len(soak.unexpected_exits))
    figure("lis_worker_outlived_kill", sum(k.lingering_workers for k in soak.kills))
    closed = [s for s in soak.idle if s.closed_by_gateway_at is not None and s.connected]
    # a kill ends every connection: the EOF came between the SIGKILL and the restart
    by_kill = [s for s in closed if any(_during(k, s.closed_by_gateway_at) for k in soak.kills)]
    figure(
        "idle_sockets_closed_by_gateway",
        len(closed) - len(by_kill),
        "sockets",
        f"besides {len(by_kill)} ended by a kill",
    )
    stuck = blocked(soak, stopped_at)
    figure(
        "analysers_blocked",
        len(stuck.analysers),
        "analysers",
        f"no ACK for > {soak.options.blocked_s:g} s while the gateway was up; longest "
        f"{stuck.longest_s:.0f} s; {stuck.behind_idle} behind an idle socket; "
        f"{stuck.at_stop} still blocked at the stop",
    )
    figure(
        "drain",
        drain_s if drain_s is not None else soak.options.drain_timeout_s,
        "s",
        "" if drain_s is not None else "deadline passed: the store still had a backlog",
    )
    figure(
        "gateway_stop",
        soak.stop_s,
        "s",
        "SIGINT to exit at the end"
        + ("; did not stop: SIGABRT, stacks in its log" if soak.slow_stop_s else ""),
    )
    figure("audit_rows", audit[1], "rows", "verified" if audit[0] else f"BROKEN: {audit[2]}")
    if torn_lines:
        reporter.say(f"  ({torn_lines} torn LIS record line(s): the LIS was killed mid-write)")
    if stuck.analysers:
        names = ", ".join(instrument_id(i) for i in stuck.analysers[:10])
        reporter.say(
            f"  analysers that could not deliver: {names}"
            + (" ..." if len(stuck.analysers) > 10 else "")
        )

    failed = list(result.failures)
    if in_two_messages:
        failed.append(f"{in_two_messages} result(s) sit in two outbox messages in the store")
    if drain_s is None:
        failed.append(f"the gateway did not drain within {soak.options.drain_timeout_s:g} s")
    if not audit[0]:
        failed.append(f"trygg audit verify failed: {audit[2]}")
    for run in soak.second_runs:
        if run.exit_code is None:
            failed.append(f"a second trygg run was still running after {SECOND_RUN_TIMEOUT_S} s")
        elif run.exit_code == 0:
            failed.append("a second trygg run exited 0 (it should refuse to start)")
        elif not run.names_the_holder:
            failed.append(f"a second trygg run exited {run.exit_code} without naming the holder")
        if not run.first_kept_the_lease:
            failed.append("the running gateway lost its lease to a second trygg run")
    if soak.unexpected_exits:
        failed.append(f"the gateway exited by itself {len(soak.unexpected_exits)} time(s)")
    for kind in ("idle", "lis", "kill", "second"):
        if not planned[kind]:
            failed.append(f"no {kind} fault was injected")
    return failed


# --- the run ----------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_store(options: SoakOptions, directory: Path) -> Any:
    """A store URL: a SQLite file in ``directory``, or a database created for this run."""
    if options.postgres is None:
        yield f"sqlite:///{directory / 'gateway.sqlite3'}"
        return
    name = f"trygg_soak_{uuid.uuid4().hex[:12]}"
    admin = create_engine(options.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield options.postgres.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


async def soak(options: SoakOptions, directory: Path, reporter: Reporter) -> bool:
    faults = plan(options.seed, duration_s=options.minutes * 60, analysers=options.analysers)
    kinds = Counter(f.kind for f in faults)
    reporter.say(
        f"soak: {options.analysers} analysers ({options.analysers // max(options.astm_every, 1)}"
        f" ASTM) at {options.rate_per_s:g} message(s)/s each for {options.minutes:g} min, "
        f"seed {options.seed}, store {'PostgreSQL' if options.postgres else 'SQLite'}; faults "
        + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
    )
    with fresh_store(options, directory) as store_url:
        run = Soak(options, directory, store_url, reporter)
        try:
            return await _soak(run, faults, reporter)
        finally:
            run.store.dispose()


async def _soak(run: Soak, faults: Sequence[Fault], reporter: Reporter) -> bool:
    options = run.options
    await run.lis.start()
    try:
        run.start_gateway()
        await run.wait_ready()
        run.analysers = [make_analyser(options, i, p) for i, p in enumerate(run.ports)]
        sending_s = await run.send_with_faults(faults)
        stopped_at = time.time()
        for sock in run.idle:
            await sock.close()
        for analyser in run.analysers:
            analyser.note_progress(stopped_at)
        stuck = await stop_tasks([a.task for a in run.analysers if a.task is not None])
        if stuck:
            reporter.say(f"  ({stuck} analyser task(s) would not stop)")
        drain_s = await run.drain()
        states = await asyncio.to_thread(run.store.states)
        in_two = await asyncio.to_thread(run.store.results_in_two_messages)
        run._expect_down = True
        code = await run.stop_gateway()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(run.gateway.stop)
        await run.lis.kill()
    if run.slow_stop_s is not None:
        reporter.say(
            f"  the gateway did not stop within {run.slow_stop_s:.0f} s of SIGINT (exit {code}); "
            f"its threads' stacks are at the end of {run.gateway.log_path}"
        )
    elif code not in (0, None, -signal.SIGINT, 130):
        reporter.say(f"  the gateway stopped with {code}; log:\n{run.gateway.log_tail(10)}")
    audit = await asyncio.to_thread(audit_verify, run.config_path)
    local_code = {nlk: code for code, nlk in NLK.items()}
    lines: list[str] = []
    for record in run.lis.records:
        with contextlib.suppress(FileNotFoundError):
            lines += record.read_text(encoding="utf-8").splitlines()
    arrivals, torn = read_arrivals(lines, local_code)
    acked = {a.instrument_id: a.acked_keys() for a in run.analysers}
    result = reconcile(acked, arrivals)
    reporter.say(f"  store at the end: {states}")
    failed = emit_figures(
        reporter,
        run,
        result,
        sending_s=sending_s,
        drain_s=drain_s,
        stopped_at=stopped_at,
        audit=audit,
        in_two_messages=in_two,
        torn_lines=torn,
        faults=faults,
    )
    if result.missing:
        where = await asyncio.to_thread(run.store.states_of, result.missing)
        reporter.say(
            "  missing results by their state in the store: "
            + ", ".join(f"{k}={v}" for k, v in where.most_common())
            + f"; e.g. {result.missing[:3]}"
        )
    for key, ids in list(result.duplicates.items())[:3]:
        reporter.say(f"  duplicate: {key} under control IDs {', '.join(ids)}")
    if result.out_of_order:
        reporter.say(f"  out of order, e.g. {result.out_of_order[:3]}")
    for reason in run.unexpected_exits[:3]:
        reporter.say(f"  unexpected gateway exit: {reason}")
    verdict = "PASS" if not failed else "FAIL: " + "; ".join(failed)
    reporter.say(f"soak verdict: {verdict}")
    if failed:
        reporter.say(
            f"  reproduce: python -m bench soak --minutes {options.minutes:g} "
            f"--analysers {options.analysers} --seed {options.seed}"
            + (f" --postgres {options.postgres}" if options.postgres else "")
            + f"; logs kept in {run.directory}"
        )
    return not failed


def run(
    reporter: Reporter,
    *,
    quick: bool,
    directory: Path,
    minutes: float | None = None,
    analysers: int | None = None,
    seed: int | None = None,
    postgres: str | None = None,
    keep: bool = False,
) -> bool:
    """Run one soak; True when every check passed. A failed soak keeps its directory."""
    base = SoakOptions.quick() if quick else SoakOptions()
    options = dataclasses.replace(
        base,
        minutes=base.minutes if minutes is None else minutes,
        analysers=base.analysers if analysers is None else analysers,
        seed=base.seed if seed is None else seed,
        postgres=postgres,
    )
    tmp = Path(tempfile.mkdtemp(dir=directory, prefix="bench-soak-"))
    passed = asyncio.run(soak(options, tmp, reporter))
    if passed and not keep:
        _remove(tmp)
    return passed


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
