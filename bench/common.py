"""Shared bench plumbing: run plans, rate sampling, free ports, child processes, /proc reads."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Plan:
    """How long to measure: a warm-up, then ``windows`` windows whose rates give the median."""

    quick: bool
    warmup_s: float
    windows: int
    window_s: float

    @classmethod
    def for_ceiling(cls, quick: bool) -> Plan:
        return cls(quick, 0.3, 3, 0.7) if quick else cls(quick, 1.0, 5, 2.0)


async def sample_rates(
    counter: Callable[[], float], *, warmup_s: float, windows: int, window_s: float
) -> list[float]:
    """Rates (per second) of a growing counter over consecutive windows after a warm-up."""
    await asyncio.sleep(warmup_s)
    rates = []
    start_count, start = counter(), time.perf_counter()
    for _ in range(windows):
        await asyncio.sleep(window_s)
        count, now = counter(), time.perf_counter()
        rates.append((count - start_count) / (now - start))
        start_count, start = count, now
    return rates


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago (all held while choosing)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def proc_status(pid: int) -> dict[str, int]:
    """The kB figures of /proc/<pid>/status (VmHWM, VmRSS, ...)."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                out[key] = int(parts[0])
    return out


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux: /proc/<pid>/task/*/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def cpu_seconds(pid: int, *, with_children: bool = True) -> float:
    """User + system CPU seconds a process (and, by default, its live children, such as the
    gateway's LIS worker) has used so far, from /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rpartition(")")[2].split()
    except OSError:
        return 0.0  # it ended meanwhile
    ticks = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / ticks
    if not with_children:
        return own
    return own + sum(cpu_seconds(c) for c in children(pid))


@contextlib.contextmanager
def peer_server(kind: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Run ``python -m bench.servers KIND`` in a child; yield (process, port); stop it after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.servers", kind],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"peer server {kind!r} did not start (said {line!r})")
        yield proc, int(line.split()[1])
    finally:
        stop_child(proc)


def stop_child(proc: subprocess.Popen[str], *, timeout_s: float = 10.0) -> None:
    """Close stdin (servers exit on EOF), then terminate, then kill: this one process only."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    try:
        proc.wait(timeout=timeout_s / 2)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s / 2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def utc_now() -> datetime:
    return datetime.now(UTC)
