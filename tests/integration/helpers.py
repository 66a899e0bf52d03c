"""Helpers for end-to-end tests: free ports, configs, waiting for a condition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gateway.config import Config, parse_config
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
