"""MQTT events carry no national ID in their texts (issue 9 item 5), against a real Mosquitto."""

from __future__ import annotations

import aiomqtt
import pytest

from gateway.bus.publisher import MqttBus
from gateway.config import MqttConfig
from tests.gateway.test_bus import (
    body,
    running,
    subscribed,
    system_broker,
    unique_prefix,
    wait_until,
)

FNR = "15037212382"  # a valid fødselsnummer
LOT = "15076500566"  # fails mod-11: not a person

__all__ = ["system_broker"]  # the fixture, imported for pytest


@pytest.mark.timeout(30)
@pytest.mark.mqtt
async def test_event_texts_are_scrubbed(system_broker: int) -> None:
    prefix = unique_prefix()
    bus = MqttBus(MqttConfig(url=f"mqtt://127.0.0.1:{system_broker}", topic_prefix=prefix), "lab1")
    received: list[aiomqtt.Message] = []
    async with subscribed(system_broker, f"{prefix}/#", received), running(bus):
        await wait_until(lambda: bus.connected, "the bus to connect")
        summary = f"Prøve merket {FNR}, lot {LOT}"
        bus.publish("deviation", "bench-1", {"id": 3, "summary": summary, "ids": [1, 2]})
        await wait_until(lambda: len(received) == 1, "the event")
    event = body(received[0])
    assert event["summary"] == f"Prøve merket 150372*****, lot {LOT}"
    assert event["ids"] == [1, 2] and FNR not in received[0].payload.decode()  # type: ignore[union-attr]
