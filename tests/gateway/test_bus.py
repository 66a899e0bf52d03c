"""The MQTT event publisher against real Mosquitto brokers: topics, JSON, outages, the bound."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.bus.publisher import EventBus, MqttBus, NullBus, event_topic
from gateway.config import MqttConfig
from tests.mqtt_broker import (
    MOSQUITTO,
    SYSTEM_PORT,
    PrivateBroker,
    ensure_system_broker,
    free_port,
)

# -- helpers ---------------------------------------------------------------------------------


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Poll ``condition`` (the bus's counters are plain attributes, not events)."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                if condition():
                    return
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}") from None


@contextlib.asynccontextmanager
async def subscribed(
    port: int, topic: str, into: list[aiomqtt.Message], qos: int = 1
) -> AsyncIterator[None]:
    """Collect every message on ``topic`` into ``into`` until the block ends."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"test-sub-{uuid.uuid4().hex}") as sub:
        await sub.subscribe(topic, qos=qos)

        async def pump() -> None:
            with contextlib.suppress(aiomqtt.MqttError):  # the broker was killed under us
                async for message in sub.messages:
                    into.append(message)

        task = asyncio.create_task(pump())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def running(bus: MqttBus) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(bus.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled(), "run() must end by cancellation, not by an error"
        assert not bus.connected


def body(message: aiomqtt.Message) -> dict[str, Any]:
    assert isinstance(message.payload, bytes)
    decoded: dict[str, Any] = json.loads(message.payload.decode("utf-8"))
    return decoded


def unique_prefix() -> str:
    return f"trygg-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def system_broker() -> int:
    if MOSQUITTO is None:
        pytest.skip("the mosquitto binary is not installed")
    ensure_system_broker()
    return SYSTEM_PORT


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    if MOSQUITTO is None:
        pytest.skip("the mosquitto binary is not installed")
    broker = PrivateBroker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# -- no broker needed ------------------------------------------------------------------------


def test_topic_layout() -> None:
    assert event_topic("trygg", "lab1", "result", "afinion-1") == "trygg/lab1/result/afinion-1"
    assert event_topic("trygg", "lab1", "deviation", "") == "trygg/lab1/deviation/-"
    assert event_topic("trygg", "lab1", "result", "a/b+#") == "trygg/lab1/result/a_b__"


def test_both_buses_are_event_buses() -> None:
    null, mqtt = NullBus(), MqttBus(MqttConfig(), "lab1")
    buses: list[EventBus] = [null, mqtt]  # the pipeline's one interface (checked by mypy)
    for bus in buses:
        assert bus.connected is False  # no broker yet
        bus.publish("instrument", "-", {"state": "online"})
    # through that interface each took the event its own way: counted, or queued for the broker
    assert null.published == 1
    assert (mqtt.queued, mqtt.published, mqtt.dropped, mqtt.rejected) == (1, 0, 0, 0)


def test_null_bus_counts_and_does_nothing() -> None:
    bus: EventBus = NullBus()
    bus.publish("result", "-", {"value": 1})
    bus.publish("result", "x", {})
    assert isinstance(bus, NullBus)
    assert (bus.published, bus.dropped, bus.connected) == (2, 0, False)


def test_publish_never_raises_on_an_unserialisable_payload() -> None:
    bus = MqttBus(MqttConfig(), "lab1")
    circular: dict[str, object] = {}
    circular["self"] = circular
    bus.publish("result", "x", circular)
    bus.publish("result", "x", {"bad-key": {(1, 2): "tuple keys are not JSON"}})
    bus.publish("result", "x", {"ok": datetime(2024, 5, 1, tzinfo=UTC)})
    assert (bus.rejected, bus.queued, bus.dropped) == (2, 1, 0)


def test_retry_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="retry"):
        MqttBus(MqttConfig(), "lab1", retry_initial_s=5, retry_max_s=1)


# -- (a) the machine's broker ----------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.mqtt
async def test_events_reach_a_subscriber_with_topic_and_json(system_broker: int) -> None:
    prefix = unique_prefix()
    bus = MqttBus(MqttConfig(url=f"mqtt://127.0.0.1:{system_broker}", topic_prefix=prefix), "lab1")
    received: list[aiomqtt.Message] = []
    taken = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
    before = datetime.now(UTC)
    async with subscribed(system_broker, f"{prefix}/#", received), running(bus):
        await wait_until(lambda: bus.connected, "the bus to connect")
        bus.publish("result", "afinion-1", {"analyte": "HbA1c", "value": 48, "taken": taken})
        bus.publish("deviation", "", {"title": "Kjøleskap for varmt", "id": 7})
        await wait_until(lambda: len(received) == 2, "both events")
        await wait_until(lambda: bus.published == 2, "both PUBACKs")
    after = datetime.now(UTC)

    by_topic = {str(message.topic): message for message in received}
    assert set(by_topic) == {f"{prefix}/lab1/result/afinion-1", f"{prefix}/lab1/deviation/-"}
    result = body(by_topic[f"{prefix}/lab1/result/afinion-1"])
    assert result["analyte"] == "HbA1c"
    assert result["value"] == 48
    assert result["taken"] == str(taken)  # default=str for datetimes
    assert (result["kind"], result["site"], result["instrument"]) == ("result", "lab1", "afinion-1")
    at = datetime.fromisoformat(result["at"])
    assert at.utcoffset() == timedelta(0)
    assert before <= at <= after
    deviation = body(by_topic[f"{prefix}/lab1/deviation/-"])
    assert deviation["title"] == "Kjøleskap for varmt"  # UTF-8, not escaped away
    assert (deviation["kind"], deviation["instrument"]) == ("deviation", "-")
    assert by_topic[f"{prefix}/lab1/deviation/-"].qos == 1


@pytest.mark.timeout(30)
@pytest.mark.mqtt
async def test_publish_from_another_thread(system_broker: int) -> None:
    """The group-commit writer hands events over from its own thread."""
    prefix = unique_prefix()
    bus = MqttBus(MqttConfig(url=f"mqtt://127.0.0.1:{system_broker}", topic_prefix=prefix), "lab1")
    received: list[aiomqtt.Message] = []

    def writer_thread() -> None:
        for n in range(500):
            bus.publish("result", "x", {"n": n})

    async with subscribed(system_broker, f"{prefix}/#", received), running(bus):
        await wait_until(lambda: bus.connected, "the bus to connect")
        await wait_until(lambda: bus.queued == 0, "an idle queue")
        await asyncio.to_thread(writer_thread)
        await wait_until(lambda: len(received) >= 500, "500 events from the thread")
        await wait_until(lambda: bus.published == 500, "500 PUBACKs")
    assert sorted(body(m)["n"] for m in received) == list(range(500))


# -- (b) the broker goes down and comes back -------------------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.mqtt
async def test_events_published_while_the_broker_is_down_arrive_after_it_returns(
    private_broker: PrivateBroker,
) -> None:
    # retry_initial_s == retry_max_s == 2: every back-off sleep lasts 1..2 s (jitter), which
    # gives the test a second to restart the broker and resubscribe before the bus comes back.
    bus = MqttBus(
        MqttConfig(url=private_broker.url, topic_prefix="trygg", queue_size=20_000),
        "lab1",
        retry_initial_s=2.0,
        retry_max_s=2.0,
    )
    received: list[aiomqtt.Message] = []
    async with running(bus):
        async with subscribed(private_broker.port, "trygg/#", received):
            await wait_until(lambda: bus.connected, "the bus to connect")
            for n in range(100):
                bus.publish("result", "afinion-1", {"n": n})
            await wait_until(lambda: len(received) >= 100, "the events sent while up")
            await wait_until(lambda: bus.published == 100, "their PUBACKs")

            failures = bus.failures
            private_broker.kill()
            await wait_until(lambda: not bus.connected, "the bus to notice the broker died")
            assert bus.failures == failures + 1

        started = time.perf_counter()
        for n in range(100, 10_100):
            bus.publish("result", "afinion-1", {"n": n})
        elapsed = time.perf_counter() - started
        assert elapsed < 1.0, f"10,000 publish() calls took {elapsed:.2f} s with the broker down"

        # the supervisor keeps trying (and failing) while the broker is down
        await wait_until(lambda: bus.failures >= failures + 2, "a refused reconnection attempt")
        assert not bus.connected
        assert "MqttError" in bus.last_error
        for n in range(10_100, 10_200):
            bus.publish("result", "afinion-1", {"n": n})
        assert bus.queued == 10_100

        private_broker.start()  # same port
        received_again: list[aiomqtt.Message] = []
        # QoS 0 to the subscriber halves its share of the CPU; the bus->broker leg is still QoS 1
        async with subscribed(private_broker.port, "trygg/#", received_again, qos=0):
            await wait_until(lambda: bus.connected, "the bus to reconnect")
            await wait_until(lambda: bus.published == 10_200, "the queued events", timeout_s=30.0)
            await wait_until(lambda: len(received_again) >= 10_100, "the subscriber to catch up")
    assert bus.dropped == 0
    assert bus.queued == 0
    assert {m.topic.value for m in received_again} == {"trygg/lab1/result/afinion-1"}
    assert {body(m)["n"] for m in received} | {body(m)["n"] for m in received_again} == set(
        range(10_200)
    )
    assert {body(m)["n"] for m in received_again} >= set(range(100, 10_200))


@pytest.mark.timeout(30)
async def test_cancelling_run_while_the_broker_is_unreachable() -> None:
    bus = MqttBus(MqttConfig(url=f"mqtt://127.0.0.1:{free_port()}"), "lab1", retry_initial_s=0.05)
    async with running(bus):
        await wait_until(lambda: bus.failures >= 3, "three refused attempts")
        bus.publish("result", "x", {"n": 1})
    assert bus.queued == 1  # kept for the next run()


# -- (c) the bound ---------------------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.mqtt
async def test_a_full_queue_drops_the_oldest_and_counts(system_broker: int) -> None:
    prefix = unique_prefix()
    config = MqttConfig(url=f"mqtt://127.0.0.1:{system_broker}", topic_prefix=prefix, queue_size=5)
    bus = MqttBus(config, "lab1")
    for n in range(8):  # run() is not running: as if the broker were down
        bus.publish("result", "x", {"n": n})
    assert (bus.queued, bus.dropped) == (5, 3)

    received: list[aiomqtt.Message] = []
    async with subscribed(system_broker, f"{prefix}/#", received), running(bus):
        await wait_until(lambda: len(received) >= 5, "the five newest events")
        await wait_until(lambda: bus.published == 5, "five PUBACKs")
        await asyncio.sleep(0.2)  # nothing else may come
    assert [body(m)["n"] for m in received] == [3, 4, 5, 6, 7]
    assert (bus.published, bus.dropped, bus.queued) == (5, 3, 0)


# -- cancellation ----------------------------------------------------------------------------


@pytest.mark.timeout(30)
async def test_cancelling_run_while_waiting_for_connack_closes_the_socket() -> None:
    """A broker that accepts TCP but never answers: cancelling must not leave the socket open."""
    hung_up = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def silent_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while await reader.read(1024):  # CONNECT arrives; we never send CONNACK
            pass
        hung_up.set()

    server = await asyncio.start_server(silent_broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        bus = MqttBus(MqttConfig(url=f"mqtt://127.0.0.1:{port}"), "lab1")
        async with running(bus):
            await wait_until(lambda: bool(writers), "the TCP connection")
            await asyncio.sleep(0.1)  # now waiting for CONNACK
        await wait_until(hung_up.is_set, "the client to close its socket", timeout_s=5.0)
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
