"""Memory: peak RSS (VmHWM) of the gateway process with 100 connected analysers under load."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
from pathlib import Path

import hl7.mllp

from bench.ceilings import sample_messages
from bench.common import children, peer_server, proc_status
from bench.harness import RigOptions, running_gateway
from bench.report import Figure, Reporter, fmt

NAME = "rss"
ANALYSERS = 100
TARGET_MB = 200.0


def _mb(kb: int) -> float:
    return kb / 1024


async def gateway_rss(directory: Path, load_s: float) -> tuple[float, float, float, float]:
    """(VmHWM MB, VmRSS MB at the end, peak VmRSS MB sampled, results/s) of the gateway child."""
    options = RigOptions(analysers=ANALYSERS, batch_size=20)
    with tempfile.TemporaryDirectory(dir=directory, prefix="bench-rss-") as tmp:
        async with running_gateway(options, Path(tmp)) as rig:
            sims = rig.add_analysers(ANALYSERS)
            await rig.wait_connected(sims)
            start, r0 = time.monotonic(), rig.acked_results()
            peak = 0
            while time.monotonic() - start < load_s:
                await rig.sleep(0.5)
                peak = max(peak, _family(rig.gateway.pid, "VmRSS"))
            rate = (rig.acked_results() - r0) / (time.monotonic() - start)
            hwm, end = _family(rig.gateway.pid, "VmHWM"), _family(rig.gateway.pid, "VmRSS")
    return _mb(hwm), _mb(end), _mb(peak), rate


def _family(pid: int, key: str) -> int:
    """``key`` (kB) of the gateway plus its live children (the LIS worker): what it costs."""
    return proc_status(pid)[key] + sum(proc_status(c)[key] for c in children(pid))


async def hl7_server_rss(load_s: float) -> float:
    """VmHWM (MB) of python-hl7's asyncio server with the same 100 connections and messages."""
    messages = sample_messages()
    with peer_server("hl7") as (proc, port):
        streams = [
            await hl7.mllp.open_hl7_connection("127.0.0.1", port, encoding="utf-8")
            for _ in range(ANALYSERS)
        ]
        stop_at = time.monotonic() + load_s

        async def client(index: int) -> None:
            reader, writer = streams[index]
            for payload in itertools.cycle(messages[index % len(messages) :] + messages):
                if time.monotonic() >= stop_at:
                    return
                writer.writeblock(payload)
                await writer.drain()
                await reader.readblock()

        try:
            await asyncio.gather(*(client(i) for i in range(ANALYSERS)))
            return _mb(proc_status(proc.pid)["VmHWM"])
        finally:
            for _, writer in streams:
                writer.close()


def run(reporter: Reporter, *, quick: bool, directory: Path) -> None:
    load_s = 6.0 if quick else 30.0
    reporter.say(
        f"rss: gateway child (python -m gateway.cli run) and its LIS worker, {ANALYSERS} "
        f"analysers sending as fast as ACKs allow for {load_s:g} s; peer: python-hl7's asyncio "
        f"server child with {ANALYSERS} connections for {min(load_s, 5.0):g} s"
    )
    peer = asyncio.run(hl7_server_rss(min(load_s, 5.0)))
    hwm, end_rss, peak, rate = asyncio.run(gateway_rss(directory, load_s))
    reporter.emit(
        Figure(
            NAME,
            "gateway_vmhwm",
            hwm,
            "MB",
            peer="python_hl7_server_vmhwm",
            peer_value=peer,
            note=f"target < {TARGET_MB:g} MB; {fmt(rate)} results/s stored during the load",
        )
    )
    reporter.emit(Figure(NAME, "gateway_vmrss_end", end_rss, "MB", note=f"sampled peak {peak:.1f}"))
