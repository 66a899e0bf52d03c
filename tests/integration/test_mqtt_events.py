"""The gateway publishes lifecycle events on MQTT, and a broker outage never stalls results."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.app import Gateway
from gateway.store.queries import summary
from simulators.hl7_analyser import Hl7AnalyserSim
from simulators.lis import LisSimOptions, LisSimulator
from tests.integration.helpers import analyser, free_port, gateway_config, make_config, wait_for
from tests.mqtt_broker import PrivateBroker

pytestmark = [
    pytest.mark.mqtt,
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto is not installed"),
]


@contextlib.asynccontextmanager
async def collect(port: int, into: list[tuple[str, dict[str, Any]]]) -> AsyncIterator[None]:
    """Subscribe to everything under trygg/ and keep (topic, payload) until the block ends."""

    async def listen() -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", port) as client:
                    await client.subscribe("trygg/#", qos=1)
                    async for message in client.messages:
                        payload = message.payload
                        assert isinstance(payload, bytes)
                        into.append((str(message.topic), json.loads(payload)))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    task = asyncio.create_task(listen())
    await asyncio.sleep(0.5)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def sim(port: int, messages: int, seed: int) -> Hl7AnalyserSim:
    return analyser(port, messages, seed, rate_per_s=20)


async def test_events_flow_and_survive_a_broker_outage(tmp_path: Path, sqlite_url: str) -> None:
    broker = PrivateBroker(tmp_path)
    broker.start()
    lis_port, port = free_port(), free_port()
    config = make_config(gateway_config(sqlite_url, [port], lis_port=lis_port, mqtt_url=broker.url))
    gateway = Gateway(config)
    events: list[tuple[str, dict[str, Any]]] = []
    run = asyncio.create_task(gateway.run())
    try:
        async with LisSimulator(LisSimOptions("127.0.0.1", lis_port)):
            async with collect(broker.port, events):
                first = sim(port, 5, 1)
                await asyncio.wait_for(first.run(), 30)
                await wait_for(
                    lambda: any(p.get("to") == "acknowledged" for _, p in events),
                    15,
                    "an acknowledged event",
                )
            topics = {topic for topic, _ in events}
            assert "trygg/test-site/instrument/inst-0" in topics
            assert "trygg/test-site/result/inst-0" in topics
            moves = {p.get("to") for _, p in events}
            assert {"queued", "sent", "acknowledged"} <= moves
            assert all(p["site"] == "test-site" and "at" in p for _, p in events)
            assert not any("patient" in json.dumps(p) for _, p in events)

            broker.kill()
            second = sim(port, 10, 2)
            await asyncio.wait_for(second.run(), 30)  # the pipeline does not wait for MQTT
            assert second.ledger.acked_messages == 10

            def all_acknowledged() -> bool:
                with gateway.engine.connect() as conn:
                    s = summary(conn)
                return s.by_state.get("acknowledged", 0) == s.received

            await wait_for(all_acknowledged, 30, "results acknowledged while MQTT is down")
            assert not gateway.bus.connected

            events.clear()
            broker.start()
            async with collect(broker.port, events):
                await wait_for(lambda: gateway.bus.connected, 20, "the bus to reconnect")
                await wait_for(
                    lambda: sum(1 for _, p in events if p.get("to") == "acknowledged") > 0,
                    20,
                    "queued events to arrive after the outage",
                )
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        gateway.engine.dispose()
        broker.stop()
