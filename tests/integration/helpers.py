"""Helpers for end-to-end tests: free ports, configs, a running gateway, analysers, waiting."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from drivers.transports import ByteStream, connector_for
from gateway.app import Gateway
from gateway.config import Config, parse_config
from gateway.errors import TransportError
from simulators.hl7_analyser import AnalyserSimOptions, Hl7AnalyserSim
from tests.ports import free_port as free_port  # re-exported for the integration tests

TEST_CODES = ("CRP", "HBA1C", "WBC", "HGB", "GLU", "ALB")


def gateway_config(
    store_url: str,
    instrument_ports: list[int],
    *,
    lis_port: int | None,
    batch_size: int = 5,
    mqtt_url: str | None = None,
    ack_timeout_s: float = 2.0,
    retry_max_s: float = 0.5,
    window: int = 1,
    worker: str = "process",
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "site": {"name": "test-site"},
        "store": {"url": store_url},
        "web": {"enabled": False},
        "instruments": [
            {"id": f"inst-{i}", "driver": "hl7_mllp", "url": f"tcp-listen://127.0.0.1:{port}"}
            for i, port in enumerate(instrument_ports)
        ],
        "tests": [{"code": code, "nlk": f"NPU{n:05d}"} for n, code in enumerate(TEST_CODES)],
    }
    if lis_port is not None:
        data["lis"] = {
            "url": f"tcp://127.0.0.1:{lis_port}",
            "batch_size": batch_size,
            "ack_timeout_s": ack_timeout_s,
            "retry_initial_s": 0.05,
            "retry_max_s": retry_max_s,
            "window": window,
            "worker": worker,
        }
    if mqtt_url:
        data["mqtt"] = {"url": mqtt_url}
    return data


def make_config(data: dict[str, Any]) -> Config:
    return parse_config(data, "<test>")


async def wait_for(predicate: Callable[[], bool], seconds: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        await asyncio.sleep(0.05)


def analyser(
    port: int, messages: int, seed: int = 7, *, instrument_id: str = "inst-0", **options: Any
) -> Hl7AnalyserSim:
    """An HL7 analyser sending ``messages`` valid, mapped results at once (``options`` change
    the rest, e.g. ``rate_per_s`` or ``ack_timeout_s``)."""
    settings: dict[str, Any] = {"rate_per_s": 0, "invalid_id_share": 0.0, "unmapped_share": 0.0}
    settings.update(options)
    return Hl7AnalyserSim(
        AnalyserSimOptions(
            instrument_id=instrument_id,
            host="127.0.0.1",
            port=port,
            max_messages=messages,
            seed=seed,
            **settings,
        )
    )


async def started(gateway: Gateway) -> asyncio.Task[None]:
    """Run the gateway until it is ready (raises what stopped its start)."""
    task = asyncio.create_task(gateway.run())
    ready = asyncio.create_task(gateway.ready.wait())
    await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if task.done():
        task.result()  # why it did not start
    assert gateway.ready.is_set()
    return task


async def stopped(task: asyncio.Task[None]) -> None:
    if task.done():
        return  # it stopped by itself (its outcome is what the test checks)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def running(gateway: Gateway, *, ready: bool = False) -> AsyncIterator[None]:
    """The gateway runs inside the block (with ``ready``, from when it is ready); an error
    that stopped it is raised at the end."""
    task = await started(gateway) if ready else asyncio.create_task(gateway.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def connect(port: int) -> ByteStream:
    """Connect as the analyser, once the gateway's session listens."""
    connector = connector_for(f"tcp://127.0.0.1:{port}")
    async with asyncio.timeout(10):
        while True:
            try:
                return await connector.connect()
            except TransportError:
                await asyncio.sleep(0.05)
