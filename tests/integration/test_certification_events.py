"""The running gateway announces recertification reminders and overdue certifications on MQTT
at start (and then daily), through the bus every other event takes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.app import Gateway
from gateway.people.competence import parse_competence
from gateway.store.competence import apply_import
from gateway.store.engine import make_engine, upgrade
from gateway.store.writer import run_in_transaction
from tests.integration.helpers import gateway_config, make_config, wait_for
from tests.integration.test_mqtt_events import collect
from tests.mqtt_broker import PrivateBroker

pytestmark = [
    pytest.mark.mqtt,
    pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto is not installed"),
]
HEADER = "person,name,operator_ids,roles,task,status,certified_on,recert_due,supervisor,evidence"


async def test_reminders_go_out_on_mqtt_at_start(tmp_path: Path, sqlite_url: str) -> None:
    today = datetime.now(ZoneInfo("Europe/Oslo")).date()
    soon, gone = today + timedelta(days=5), today - timedelta(days=2)
    text = (
        f"{HEADER}\n"
        f"bente,Bente Hansen,BH,operator,*,certified,2025-01-01,{soon.isoformat()},,\n"
        f"kari,Kari Nordmann,KN,operator,*,certified,2025-01-01,{gone.isoformat()},,\n"
    )
    parsed = parse_competence(text)
    assert parsed.ok, parsed.problems
    engine = make_engine(sqlite_url)
    upgrade(engine)
    run_in_transaction(engine, lambda tx: apply_import(tx, parsed, actor="setup"))
    engine.dispose()

    broker = PrivateBroker(tmp_path)
    broker.start()
    config = make_config(gateway_config(sqlite_url, [], lis_port=None, mqtt_url=broker.url))
    gateway = Gateway(config)
    events: list[tuple[str, dict[str, Any]]] = []
    try:
        async with collect(broker.port, events):
            run = asyncio.create_task(gateway.run())
            try:
                await wait_for(
                    lambda: sum(t.endswith("/certification/-") for t, _ in events) >= 2,
                    20,
                    "two certification events",
                )
            finally:
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run
    finally:
        gateway.engine.dispose()
        broker.stop()
    found = {p["person"]: p for topic, p in events if topic == "trygg/test-site/certification/-"}
    assert found["bente"]["notice"] == "reminder" and found["bente"]["days"] == 5
    assert found["bente"]["due"] == soon.isoformat()
    assert found["kari"]["notice"] == "overdue" and found["kari"]["days"] == 2
    assert all(p["site"] == "test-site" for p in found.values())
    assert not any("patient" in json.dumps(p) for p in found.values())
    assert gateway.certification_watch.announced == 2
    # the envelope's kind is the event's: what the notice is sits beside it
    assert {p["kind"] for p in found.values()} == {"certification"}
