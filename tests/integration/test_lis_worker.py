"""The LIS forwarder's child process: restarted when it dies, gone when its gateway dies."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.app import Gateway
from gateway.lis.worker import ForwarderProcess
from gateway.store.queries import summary
from gateway.store.tables import outbox
from simulators.hl7_analyser import AnalyserSimOptions, Hl7AnalyserSim
from simulators.lis import LisSimOptions, LisSimulator
from tests.integration.helpers import free_port, gateway_config, make_config, wait_for
from tests.integration.test_kill9 import toml_config

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals and /proc")


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux: /proc/<pid>/task/*/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def analyser(port: int, messages: int, seed: int) -> Hl7AnalyserSim:
    return Hl7AnalyserSim(
        AnalyserSimOptions(
            instrument_id="inst-0",
            host="127.0.0.1",
            port=port,
            rate_per_s=0,
            max_messages=messages,
            invalid_id_share=0.0,
            unmapped_share=0.0,
            seed=seed,
        )
    )


async def test_a_killed_worker_is_restarted_and_delivery_goes_on(
    sqlite_url: str, tmp_path: Path
) -> None:
    lis_port, port = free_port(), free_port()
    record = tmp_path / "lis.jsonl"
    config = make_config(gateway_config(sqlite_url, [port], lis_port=lis_port, batch_size=2))
    gateway = Gateway(config)
    forwarder = gateway.forwarder
    assert isinstance(forwarder, ForwarderProcess)
    task = asyncio.create_task(gateway.run())
    try:
        async with LisSimulator(LisSimOptions("127.0.0.1", lis_port, record=record)):
            first = analyser(port, 10, seed=1)
            await asyncio.wait_for(first.run(), 30)

            def all_acknowledged() -> bool:
                with gateway.engine.connect() as conn:
                    s = summary(conn)
                return s.received > 0 and s.by_state.get("acknowledged", 0) == s.received

            await wait_for(all_acknowledged, 30, "the first results to be acknowledged")
            workers = [c for c in children_of(os.getpid()) if alive(c)]
            assert len(workers) == 1, workers
            os.kill(workers[0], signal.SIGKILL)
            await wait_for(lambda: forwarder.starts == 2, 15, "the worker to be restarted")
            second = analyser(port, 10, seed=2)
            await asyncio.wait_for(second.run(), 30)
            await wait_for(all_acknowledged, 30, "the later results to be acknowledged")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    with gateway.engine.connect() as conn:
        control_ids = conn.execute(select(outbox.c.control_id)).scalars().all()
        assert summary(conn).received == len(first.ledger.acked) + len(second.ledger.acked)
    assert len(control_ids) == len(set(control_ids))
    assert not [c for c in children_of(os.getpid()) if alive(c)], "the worker outlived the stop"
    gateway.engine.dispose()


def test_the_worker_exits_when_its_gateway_is_killed(tmp_path: Path) -> None:
    data = gateway_config(
        f"sqlite:///{tmp_path / 'gw.sqlite3'}", [free_port()], lis_port=free_port()
    )
    config_path = tmp_path / "site.toml"
    config_path.write_text(toml_config(data), encoding="utf-8")
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(config_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not (workers := children_of(gateway.pid)):
            assert time.monotonic() < deadline, "the gateway started no LIS worker"
            time.sleep(0.1)
        gateway.kill()
        gateway.wait()
        deadline = time.monotonic() + 10
        while alive(workers[0]):
            assert time.monotonic() < deadline, "the LIS worker outlived its gateway"
            time.sleep(0.1)
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()


def test_a_garbled_frame_from_the_worker_gets_it_killed(sqlite_url: str) -> None:
    # a process writing junk where frames belong must be stopped, not trusted or waited on
    config = make_config(gateway_config(sqlite_url, [], lis_port=free_port()))
    gateway = Gateway(config)
    forwarder = gateway.forwarder
    assert isinstance(forwarder, ForwarderProcess)
    junk = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; sys.stdout.write('x' * 64); sys.stdout.flush(); time.sleep(60)",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        started = time.monotonic()
        forwarder._read_child(junk, queue.SimpleQueue())
        assert junk.wait(timeout=10) != 0  # killed, well before its minute was up
        assert time.monotonic() - started < 10
    finally:
        if junk.poll() is None:
            junk.kill()
        junk.wait()
        for stream in (junk.stdin, junk.stdout):
            if stream is not None:
                stream.close()
        gateway.engine.dispose()
