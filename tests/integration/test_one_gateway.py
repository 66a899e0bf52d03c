"""One gateway per store: a second refuses to start, a takeover stops the first, ports bind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.app import Gateway
from gateway.config import Config
from gateway.errors import LeaseHeldError, LeaseLostError, ListenError
from gateway.store.lease import read_holder
from gateway.store.queries import summary
from gateway.store.tables import outbox
from simulators.lis import LisSimOptions, LisSimulator
from tests.integration.helpers import (
    TEST_CODES,
    analyser,
    free_port,
    gateway_config,
    make_config,
    started,
    stopped,
    wait_for,
)
from tests.integration.test_kill9 import toml_config
from tests.integration.test_lis_worker import alive, children_of

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A port another program listens on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


async def test_a_second_gateway_on_the_store_refuses_to_start(
    store_url: str, make_gateway: Callable[[Config], Gateway]
) -> None:
    config = make_config(gateway_config(store_url, [free_port()], lis_port=None))
    first = make_gateway(config)
    task = await started(first)
    try:
        second = make_gateway(config)  # the very same config: same store, same ports
        with pytest.raises(LeaseHeldError) as refused:
            await second.run()
        text = str(refused.value)
        assert f"host {first.lease.host}, process {os.getpid()}" in text
        assert "running since" in text and "last heartbeat" in text
        assert "Stop the other gateway first" in text
        assert not task.done(), "the running gateway must not notice the refused one"
        with first.engine.connect() as conn:
            holder = read_holder(conn)
        assert holder is not None and holder.instance_id == first.lease.instance_id
    finally:
        await stopped(task)
    with first.engine.connect() as conn:
        holder = read_holder(conn)
    assert holder is not None and holder.released_at is not None  # a clean stop released it
    third = make_gateway(config)
    await stopped(await started(third))  # and the next start needs no wait


def cli_run(config_path: Path, seconds: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "run", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=seconds,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


async def test_trygg_run_refuses_while_another_gateway_runs(
    tmp_path: Path, make_gateway: Callable[[Config], Gateway]
) -> None:
    data = gateway_config(f"sqlite:///{tmp_path / 'gw.sqlite3'}", [free_port()], lis_port=None)
    data["lis"] = {"url": f"tcp://127.0.0.1:{free_port()}"}
    config_path = tmp_path / "site.toml"
    config_path.write_text(toml_config(data), encoding="utf-8")
    task = await started(make_gateway(make_config(data)))
    try:
        done = await asyncio.to_thread(cli_run, config_path, 60)
    finally:
        await stopped(task)
    assert done.returncode == 2, done.stderr
    assert "another Trygg gateway is running on this store" in done.stderr
    assert f"process {os.getpid()}" in done.stderr
    assert "Traceback" not in done.stderr


def lis_results(record: Path) -> dict[tuple[str, str], set[str]]:
    """(specimen, test) -> the control IDs the LIS received it under, from its record."""
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for line in record.read_text(encoding="utf-8").splitlines():
        entry: dict[str, Any] = json.loads(line)
        specimen = ""
        for segment in entry["message"].split("\r"):
            fields = segment.split("|")
            if fields[0] == "OBR":
                specimen = fields[3].split("^")[0]
            elif fields[0] == "OBX":
                found[(specimen, fields[3].split("^")[0])].add(entry["control_id"])
    return found


@pytest.mark.parametrize("worker", ["inline", "process"])
async def test_a_takeover_stops_the_first_gateway_forwarding(
    sqlite_url: str, tmp_path: Path, make_gateway: Callable[[Config], Gateway], worker: str
) -> None:
    lis_port, port_a, port_b = free_port(), free_port(), free_port()
    record = tmp_path / "lis.jsonl"

    def config(port: int) -> Config:
        data = gateway_config(sqlite_url, [port], lis_port=lis_port, batch_size=2, worker=worker)
        data["store"]["lease_ttl_s"] = 1.5  # heartbeat every 0.5 s
        return make_config(data)

    async with LisSimulator(LisSimOptions("127.0.0.1", lis_port, record=record)):
        first = make_gateway(config(port_a))
        task_a = await started(first)
        try:
            sim_a = analyser(port_a, 6, seed=1)
            await asyncio.wait_for(sim_a.run(), 30)

            def acknowledged(gateway: Gateway, count: int) -> Callable[[], bool]:
                def check() -> bool:
                    with gateway.engine.connect() as conn:
                        return summary(conn).by_state.get("acknowledged", 0) >= count

                return check

            await wait_for(acknowledged(first, len(sim_a.ledger.acked)), 30, "A's results")
            # B runs on another PC (its own port) whose clock says A's lease ran out: it
            # takes the store over while A still runs, as after A's PC froze for a while
            second = Gateway(
                config(port_b), clock=lambda: datetime.now(UTC) + timedelta(seconds=10)
            )
            task_b = await started(second)
            try:
                with pytest.raises(LeaseLostError) as lost:
                    await asyncio.wait_for(task_a, 5)  # within a few heartbeats
                text = str(lost.value)
                assert f"process {os.getpid()}" in text and "took it over" in text
                # A's TaskGroup has ended: its forwarder (and its worker child) with it
                assert len(workers()) == (1 if worker == "process" else 0)
                # only B forwards now: what reaches B goes out once, under one control ID
                sim_b = analyser(port_b, 6, seed=2, instrument_id="sim-b")  # its own specimen IDs
                await asyncio.wait_for(sim_b.run(), 30)
                total = len(sim_a.ledger.acked) + len(sim_b.ledger.acked)
                await wait_for(acknowledged(second, total), 30, "B's results")
            finally:
                await stopped(task_b)
        finally:
            await stopped(task_a)
    sent = lis_results(record)
    nlk = {code: f"NPU{n:05d}" for n, code in enumerate(TEST_CODES)}
    assert set(sent) == {
        (o.specimen_id, nlk[o.test_code]) for sim in (sim_a, sim_b) for o in sim.ledger.acked
    }
    assert {k: v for k, v in sent.items() if len(v) > 1} == {}
    with second.engine.connect() as conn:
        control_ids = conn.execute(select(outbox.c.control_id)).scalars().all()
        holder = read_holder(conn)
    second.engine.dispose()
    assert len(control_ids) == len(set(control_ids))
    assert holder is not None and holder.instance_id == second.lease.instance_id
    assert holder.released_at is not None  # B stopped cleanly; A never released B's lease


def workers() -> list[int]:
    """This process's living child processes (the LIS worker children)."""
    return [c for c in children_of(os.getpid()) if alive(c)]


async def test_a_taken_instrument_port_fails_the_start(
    sqlite_url: str, make_gateway: Callable[[Config], Gateway]
) -> None:
    with taken_port() as port:
        config = make_config(gateway_config(sqlite_url, [free_port(), port], lis_port=None))
        gateway = make_gateway(config)
        with pytest.raises(ListenError) as failed:
            await asyncio.wait_for(gateway.run(), 30)
    text = str(failed.value)
    assert text.startswith(f"instruments[1].url = 'tcp-listen://127.0.0.1:{port}'")
    assert "(instrument inst-1): cannot listen" in text
    assert "in use" in text and "give instruments[1].url another address" in text
    with gateway.engine.connect() as conn:
        holder = read_holder(conn)
    assert holder is not None and holder.released_at is not None


async def test_a_taken_web_or_orders_port_fails_the_start(
    sqlite_url: str, make_gateway: Callable[[Config], Gateway]
) -> None:
    with taken_port() as port:
        data = gateway_config(sqlite_url, [free_port()], lis_port=free_port())
        data["web"] = {"enabled": True, "listen": f"127.0.0.1:{port}"}
        with pytest.raises(ListenError, match=rf"^web\.listen = '127\.0\.0\.1:{port}'"):
            await asyncio.wait_for(make_gateway(make_config(data)).run(), 30)
        data["web"] = {"enabled": False}
        data["lis"]["orders_url"] = f"tcp-listen://127.0.0.1:{port}"
        with pytest.raises(ListenError, match=r"^lis\.orders_url = .*the LIS orders listener"):
            await asyncio.wait_for(make_gateway(make_config(data)).run(), 30)


async def test_an_outbound_instrument_whose_peer_is_down_still_starts(
    sqlite_url: str, make_gateway: Callable[[Config], Gateway]
) -> None:
    data = gateway_config(sqlite_url, [], lis_port=None)
    data["instruments"] = [
        {"id": "out-1", "driver": "hl7_mllp", "url": f"tcp://127.0.0.1:{free_port()}"}
    ]
    gateway = make_gateway(make_config(data))
    task = await started(gateway)
    try:
        live = gateway.live.instruments["out-1"]
        await wait_for(lambda: bool(live.detail) and not live.connected, 10, "a failed connect")
        assert not task.done()  # it keeps retrying the connect, as before
    finally:
        await stopped(task)


async def test_trygg_run_with_a_taken_port_exits_with_the_error(tmp_path: Path) -> None:
    with taken_port() as port:
        data = gateway_config(f"sqlite:///{tmp_path / 'gw.sqlite3'}", [port], lis_port=None)
        data["lis"] = {"url": f"tcp://127.0.0.1:{free_port()}"}
        config_path = tmp_path / "site.toml"
        config_path.write_text(toml_config(data), encoding="utf-8")
        done = await asyncio.to_thread(cli_run, config_path, 60)
    assert done.returncode == 2, done.stderr
    assert f"instruments[0].url = 'tcp-listen://127.0.0.1:{port}'" in done.stderr
    assert "Traceback" not in done.stderr
