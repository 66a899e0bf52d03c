"""The LIS worker process: restarted when it dies or breaks the protocol, gone with its gateway."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.app import Gateway
from gateway.lis.frames import PROTOCOL_VERSION, TO_PARENT, Hello, Ready, encode_frame, read_frame
from gateway.lis.worker import EXIT_REFUSED, ForwarderProcess
from gateway.store.engine import make_engine, upgrade
from gateway.store.queries import summary
from gateway.store.tables import outbox
from simulators.lis import LisSimOptions, LisSimulator
from tests.integration.helpers import analyser, free_port, gateway_config, make_config, wait_for
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


# -- the closed protocol: whatever is not ours is refused and the child restarted --------------

# An impostor in the worker's place: it sends the frames of IMPOSTOR_FRAMES[kind], then reads
# its stdin to the end (so it exits when the gateway lets it go) and exits.
IMPOSTOR = """
import os, pickle, struct, sys
from gateway.lis.frames import PROTOCOL_VERSION, Hello, Ready, Status

class RunsCode:  # a plain pickle.loads of this would run the command
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))

frames = {kinds}[sys.argv[1]]
for frame in frames:
    payload = pickle.dumps(frame)
    sys.stdout.buffer.write(struct.pack(">I", len(payload)) + payload)
sys.stdout.buffer.flush()
sys.stdin.buffer.read()
"""
IMPOSTOR_FRAMES = """{
    "code": [Ready(PROTOCOL_VERSION), RunsCode()],
    "code-first": [RunsCode()],
    "version": [Ready(PROTOCOL_VERSION + 1)],
    "before-ready": [Status(True, "", 0, 0, 0, 0)],
    "out-of-place": [Ready(PROTOCOL_VERSION), Ready(PROTOCOL_VERSION)],
    "wrong-way": [Ready(PROTOCOL_VERSION), Hello(PROTOCOL_VERSION, "", "", 0)],
}"""


@pytest.mark.parametrize(
    ("kind", "logged"),
    [
        ("code", "posix.system is not part of the worker protocol"),
        ("code-first", "posix.system is not part of the worker protocol"),
        ("version", f"version {PROTOCOL_VERSION + 1}, the gateway's is {PROTOCOL_VERSION}"),
        ("before-ready", "Status before Ready"),
        ("out-of-place", "a Ready frame out of place"),
        ("wrong-way", "a Hello is not a frame this side accepts"),
    ],
)
async def test_a_frame_that_is_not_ours_is_refused_and_the_worker_restarted(
    sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, kind: str, logged: str
) -> None:
    marker = tmp_path / "ran"

    class Impostor(ForwarderProcess):
        command = (
            sys.executable,
            "-c",
            IMPOSTOR.format(kinds=IMPOSTOR_FRAMES),
            kind,
            str(marker),
        )

    config = make_config(gateway_config(sqlite_url, [], lis_port=free_port()))
    gateway = Gateway(config)
    gateway.writer.start()
    forwarder = Impostor(config, gateway.writer, restart_s=0.05)
    task = asyncio.create_task(forwarder.run())
    try:
        with caplog.at_level(logging.ERROR, logger="gateway.lis.worker"):
            await wait_for(lambda: forwarder.starts >= 3, 30, "the worker to be restarted twice")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gateway.writer.stop()
        gateway.engine.dispose()
    refusals = [r.getMessage() for r in caplog.records if "stopping it" in r.getMessage()]
    assert len(refusals) >= 2, caplog.text  # each impostor was refused, not just the first
    assert all(logged in message for message in refusals), refusals
    exits = [r.getMessage() for r in caplog.records if "exited (code" in r.getMessage()]
    assert exits and all(f"code {-signal.SIGKILL}" in m for m in exits), exits  # killed
    assert not marker.exists()  # the frame's code never ran
    assert forwarder.connected is False


def _start_worker() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.lis.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _finish(worker: subprocess.Popen[bytes]) -> tuple[int, str]:
    try:
        _, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    return worker.returncode, err.decode("utf-8", "replace")


def _hello(sqlite_url: str, version: int = PROTOCOL_VERSION) -> Hello:
    config = make_config(gateway_config(sqlite_url, [], lis_port=free_port()))
    assert config.lis is not None
    return Hello(version, sqlite_url, config.lis.model_dump_json(), logging.INFO)


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.system, (f"touch {self.marker}",))


def _raw_frame(item: object) -> bytes:
    payload = pickle.dumps(item)
    return struct.pack(">I", len(payload)) + payload


def test_the_worker_refuses_a_first_frame_that_would_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    worker = _start_worker()
    assert worker.stdin is not None
    worker.stdin.write(_raw_frame(_RunsCode(marker)))
    worker.stdin.flush()
    code, err = _finish(worker)
    assert code == EXIT_REFUSED
    assert "posix.system is not part of the worker protocol" in err
    assert not marker.exists()


def test_the_worker_refuses_a_gateway_of_another_protocol_version(sqlite_url: str) -> None:
    worker = _start_worker()
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(encode_frame(_hello(sqlite_url, PROTOCOL_VERSION + 1)))
    worker.stdin.flush()
    code, err = _finish(worker)
    assert code == EXIT_REFUSED
    assert f"speaks worker protocol {PROTOCOL_VERSION + 1}, this worker {PROTOCOL_VERSION}" in err


def test_the_worker_answers_ready_then_refuses_an_unknown_frame(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    engine.dispose()
    marker = tmp_path / "ran"
    worker = _start_worker()
    assert worker.stdin is not None and worker.stdout is not None
    worker.stdin.write(encode_frame(_hello(sqlite_url)))
    worker.stdin.flush()
    assert read_frame(worker.stdout, TO_PARENT) == Ready(PROTOCOL_VERSION)
    worker.stdin.write(_raw_frame(functools.partial(os.system, f"touch {marker}")))
    worker.stdin.flush()
    code, err = _finish(worker)
    assert code == EXIT_REFUSED
    assert "refused a frame from the gateway" in err
    assert "functools.partial is not part of the worker protocol" in err
    assert not marker.exists()
