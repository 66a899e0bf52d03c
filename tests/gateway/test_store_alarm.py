"""The gateway's store alarm: a failure is logged and published; healing is published and the
audit trail keeps what was wrong (through the real writer, on the real store)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from gateway.store.health import StoreHealth
from gateway.store.tables import audit
from gateway.store.writer import GroupCommitWriter
from gateway.store_alarm import StoreAlarm, not_stored

T0 = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


class Recorder:
    """An ``EventBus`` that keeps what it was given."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, object]]] = []

    def publish(self, kind: str, instrument: str, payload: Mapping[str, object]) -> None:
        self.events.append((kind, instrument, dict(payload)))


def test_the_alarm_logs_publishes_and_audits_the_recovery(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    bus = Recorder()
    writer = GroupCommitWriter(engine)
    writer.start()
    try:
        health = StoreHealth("sqlite")
        health.on_change = StoreAlarm("sqlite:////var/lib/trygg/store.sqlite3", bus, writer)
        caplog.set_level(logging.WARNING)
        health.fail("io_error", "disk I/O error", source="write", now=T0)
        assert "(io_error)" in str(not_stored(health))  # what the refused analyser hears
        failed = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(failed) == 1 and "/var/lib/trygg/store.sqlite3" in failed[0].getMessage()
        assert health.passed(health.generation)
    finally:
        writer.stop()  # runs the recovery's audit job first
    assert [(kind, payload["status"]) for kind, _, payload in bus.events] == [
        ("store", "failed"),
        ("store", "ok"),
    ]
    assert bus.events[0][2]["problem"] == "io_error" and bus.events[0][2]["since"] == T0.isoformat()
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit.c.entity_id, audit.c.reason).where(audit.c.action == "store.recovered")
        ).all()
    assert rows == [("sqlite", f"failed since {T0.isoformat()} (io_error, write): disk I/O error")]
