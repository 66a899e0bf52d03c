"""The gateway under load: it runs in a child process; the LIS and the analysers run in ours."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.common import REPO, cpu_seconds, free_ports
from bench.people import seed_people
from bench.qc_status import qc_toml, seed_qc_status
from simulators.hl7_analyser import TESTS, AnalyserSimOptions, Hl7AnalyserSim
from simulators.lis import LisSimOptions, LisSimulator

#: the simulator's test codes, mapped in the generated config (NLK codes for three of them)
NLK = {"CRP": "NPU19748", "HBA1C": "NPU27300", "WBC": "NPU02593"}


@dataclass(frozen=True, slots=True)
class RigOptions:
    """One gateway configuration under test."""

    analysers: int = 100
    batch_size: int = 20
    validate_messages: str = "fast"  # [lis] validate_messages: off | fast | full
    window: int = 8  # [lis] window: messages awaiting their ACK (the LIS simulator pipelines)
    group_commit_max: int = 32  # the default in [store]
    #: > 0: ``[people] enforce = true`` with this many certified persons in the store
    people: int = 0
    #: ``[[qc]]`` for every test (daily, lockout hold) and every analyser's tests in control
    qc: bool = False


def instrument_id(index: int) -> str:
    """``an-001``...: unique in the first six characters, which the simulator's ids use."""
    return f"an-{index + 1:03d}"


def site_toml(
    site: str, store: list[str], lis: list[str], instruments: Iterable[tuple[int, str]]
) -> str:
    """A gateway child's TOML: ``store`` and ``lis`` lines under their tables, one
    ``tcp-listen`` instrument per (port, driver), the simulators' test mappings, no web."""
    lines = ["[site]", f'name = "{site}"', "", "[store]", *store, "", "[lis]", *lis]
    lines += ["", "[web]", "enabled = false"]
    for index, (port, driver) in enumerate(instruments):
        lines += [
            "",
            "[[instruments]]",
            f'id = "{instrument_id(index)}"',
            f'driver = "{driver}"',
            f'url = "tcp-listen://127.0.0.1:{port}"',
        ]
    for code, name, unit, *_ in TESTS:
        lines += ["", "[[tests]]", f'code = "{code}"', f'name = "{name}"', f'unit = "{unit}"']
        if code in NLK:
            lines.append(f'nlk = "{NLK[code]}"')
    return "\n".join(lines) + "\n"


def config_text(
    options: RigOptions, store_path: Path, instrument_ports: list[int], lis_port: int
) -> str:
    """The TOML the gateway child reads: instruments, test mappings, LIS, no web, no MQTT."""
    store = [f'url = "sqlite:///{store_path}"', f"group_commit_max = {options.group_commit_max}"]
    lis = [
        f'url = "tcp://127.0.0.1:{lis_port}"',
        f"batch_size = {options.batch_size}",
        f'validate_messages = "{options.validate_messages}"',
        f"window = {options.window}",
        "retry_initial_s = 0.1",
        "retry_max_s = 1.0",
    ]
    text = site_toml("bench", store, lis, ((port, "hl7_mllp") for port in instrument_ports))
    text += "\n[people]\nenforce = true\n" if options.people else ""
    return text + (qc_toml(code for code, *_ in TESTS) if options.qc else "")


class GatewayFailed(RuntimeError):
    """The gateway child exited early; the message carries its log's tail."""


@dataclass
class GatewayChild:
    """``python -m gateway.cli run --config ...`` in a child process, output in a log file."""

    config_path: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    #: keep the log of earlier runs (a soak restarts the gateway on the same log)
    append_log: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        log = self.log_path.open("ab" if self.append_log else "wb")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run", "--config", str(self.config_path)],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **self.extra_env},
            )
        finally:
            log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check(self) -> None:
        """Raise ``GatewayFailed`` (with its log) if the child has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise GatewayFailed(
                f"the gateway exited with code {self.proc.returncode}; its log ends:\n"
                + self.log_tail()
            )

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """Ctrl-C (SIGINT) so the writer flushes, then SIGTERM, then SIGKILL: this child only."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        return proc.returncode


@dataclass
class LisMessage:
    """One message the LIS simulator received (from its record file)."""

    received_at: float  # time.time() seconds
    ack_code: str | None
    #: (specimen id from OBR-3, OBX-3 identifier) per OBX, in order
    results: list[tuple[str, str]]


def read_lis_record(path: Path) -> list[LisMessage]:
    """Parse the LIS simulator's record: one JSON line per message it received."""
    out = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            entry = json.loads(line)
            results: list[tuple[str, str]] = []
            specimen = ""
            for segment in entry["message"].split("\r"):
                fields = segment.split("|")
                if fields[0] == "OBR":
                    specimen = fields[3].split("^")[0] if len(fields) > 3 else ""
                elif fields[0] == "OBX":
                    code = fields[3].split("^")[0] if len(fields) > 3 else ""
                    results.append((specimen, code))
            stamp = datetime.fromisoformat(entry["received_at"]).timestamp()
            out.append(LisMessage(stamp, entry["ack_code"], results))
    return out


def results_between(messages: Iterable[LisMessage], start: float, end: float) -> int:
    """Results the LIS accepted (AA) in messages received in [start, end)."""
    return sum(
        len(m.results) for m in messages if m.ack_code == "AA" and start <= m.received_at < end
    )


@dataclass
class Rig:
    """A running gateway child, the in-process LIS simulator, and the analysers' options."""

    options: RigOptions
    directory: Path
    gateway: GatewayChild
    lis: LisSimulator
    lis_record: Path
    analyser_ports: list[int]
    sims: list[Hl7AnalyserSim] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # set: analysers wind down

    def add_analysers(
        self, count: int, *, rate_per_s: float = 0.0, results: tuple[int, int] = (5, 20)
    ) -> list[Hl7AnalyserSim]:
        """Start ``count`` simulated analysers (Hl7AnalyserSim.run) against the next listeners."""
        start = len(self.sims)
        new = []
        for index in range(start, start + count):
            sim = Hl7AnalyserSim(
                AnalyserSimOptions(
                    instrument_id=instrument_id(index),
                    host="127.0.0.1",
                    port=self.analyser_ports[index],
                    rate_per_s=rate_per_s,
                    results_min=results[0],
                    results_max=results[1],
                    invalid_id_share=0.0,
                    unmapped_share=0.0,
                    serial=f"SIM-{index + 1:04d}",
                    operator_id=f"OP{index + 1}",
                    seed=index,
                    ack_timeout_s=60.0,
                )
            )
            new.append(sim)
            self.tasks.append(asyncio.create_task(sim.run(), name=f"sim-{index}"))
        self.sims.extend(new)
        return new

    def acked_results(self) -> int:
        """Results the analysers got AA for (the gateway stored them durably)."""
        return sum(len(sim.ledger.acked) for sim in self.sims)

    def acked_messages(self) -> int:
        return sum(sim.ledger.acked_messages for sim in self.sims)

    async def wait_connected(self, sims: list[Hl7AnalyserSim], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(sim.connected for sim in sims):
            self.gateway.check()
            if time.monotonic() > deadline:
                missing = sum(not sim.connected for sim in sims)
                raise GatewayFailed(
                    f"{missing} of {len(sims)} analysers could not connect within {timeout_s} s; "
                    "gateway log:\n" + self.gateway.log_tail()
                )
            await asyncio.sleep(0.1)

    async def sleep(self, seconds: float) -> None:
        """Sleep, checking every 0.25 s that the gateway and the analysers are still alive."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(0.25, left))
            self.gateway.check()
            for task in self.tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    task.result()

    async def stop_analysers(self, timeout_s: float = 30.0) -> None:
        """Cancel the analyser tasks, again and again: Python 3.11's ``asyncio.wait_for`` (which
        the simulator uses) can swallow a cancellation that races with its inner read."""
        self.stopping.set()
        deadline = time.monotonic() + timeout_s
        pending = {task for task in self.tasks if not task.done()}
        while pending and time.monotonic() < deadline:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.5)
        if pending:
            sys.stderr.write(f"bench: {len(pending)} analyser task(s) would not stop\n")
        for task in self.tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a failure at shutdown is not news
        self.tasks.clear()


@contextlib.asynccontextmanager
async def running_gateway(options: RigOptions, directory: Path) -> AsyncIterator[Rig]:
    """Write the config, start the LIS here and the gateway in a child; stop both after."""
    lis_port, *ports = free_ports(options.analysers + 1)
    store = directory / "gateway.sqlite3"
    config_path = directory / "bench.toml"
    config_path.write_text(config_text(options, store, ports, lis_port), encoding="utf-8")
    if options.people:
        seed_people(
            store, analysers=options.analysers, people=options.people, instrument_id=instrument_id
        )
    if options.qc:
        seed_qc_status(
            store,
            analysers=options.analysers,
            codes=[code for code, *_ in TESTS],
            instrument_id=instrument_id,
        )
    record = directory / "lis-record.jsonl"
    lis = LisSimulator(
        LisSimOptions(host="127.0.0.1", port=lis_port, record=record, validate="fast", seed=1)
    )
    gateway = GatewayChild(config_path, directory / "gateway.log")
    async with lis:
        gateway.start()
        rig = Rig(options, directory, gateway, lis, record, ports)
        try:
            yield rig
        finally:
            await rig.stop_analysers()
            code = await asyncio.to_thread(gateway.stop)
            if code not in (0, None, -signal.SIGINT, 130):
                sys.stderr.write(
                    f"bench: the gateway exited with {code}; log:\n{gateway.log_tail()}\n"
                )
