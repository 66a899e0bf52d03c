"""Outbox bookkeeping on both stores: one control ID per result, settling is idempotent."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from drivers.model import InboundMessage, Observation
from gateway.config import LisConfig
from gateway.config import TestConfig as MappingConfig
from gateway.ingest import store_message
from gateway.lis.oru import build_oru
from gateway.lis.outbox import enqueue, mark_sent, pending_messages, settle, unassigned_queued
from gateway.rules import RuleContext
from gateway.store.audit import verify
from gateway.store.tables import deviations, outbox, results
from gateway.store.writer import Tx, run_in_transaction

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
LIS = LisConfig(url="tcp://127.0.0.1:2575", batch_size=5)
CONTEXT = RuleContext(tests={("", "CRP"): MappingConfig(code="CRP", nlk="NPU19748")})


def fill(engine: Engine, n: int) -> None:
    for i in range(n):
        obs = Observation(
            "i1", "CRP", str(i), performed_at=NOW, specimen_id=f"S{i}", patient_id="01010012356"
        )
        run_in_transaction(
            engine,
            lambda tx, o=obs, k=i: store_message(
                tx, InboundMessage("i1", "t", f"m{k}".encode(), NOW, observations=(o,)), CONTEXT
            ),
        )


def pack(tx: Tx, control_id: str) -> int:
    queued = unassigned_queued(tx, 5)
    return enqueue(
        tx, [(control_id, build_oru(queued, control_id=control_id, now=NOW, lis=LIS), queued)]
    )


def test_two_packers_cannot_give_a_result_two_control_ids(engine: Engine) -> None:
    fill(engine, 3)
    with engine.connect() as conn:  # a second packer read the same queued results meanwhile
        stale = unassigned_queued(Tx(conn, NOW), 5)
    assert run_in_transaction(engine, lambda tx: pack(tx, "FIRST")) == 1
    text = build_oru(stale, control_id="SECOND", now=NOW, lis=LIS)
    assert run_in_transaction(engine, lambda tx: enqueue(tx, [("SECOND", text, stale)])) == 0
    with engine.connect() as conn:
        assert list(conn.execute(select(outbox.c.control_id)).scalars()) == ["FIRST"]


def test_settling_twice_changes_nothing_the_second_time(engine: Engine) -> None:
    fill(engine, 2)
    run_in_transaction(engine, lambda tx: pack(tx, "C1"))
    [message] = run_in_transaction(engine, lambda tx: pending_messages(tx, 10))
    run_in_transaction(engine, lambda tx: mark_sent(tx, message))
    run_in_transaction(engine, lambda tx: settle(tx, message, "AR", "unknown test"))
    run_in_transaction(engine, lambda tx: settle(tx, message, "AR", "unknown test"))
    with engine.connect() as conn:
        assert conn.execute(select(outbox.c.state)).scalar_one() == "rejected"
        assert set(conn.execute(select(results.c.state)).scalars()) == {"rejected"}
        assert conn.execute(select(func.count()).select_from(deviations)).scalar_one() == 1
        assert verify(conn).ok
