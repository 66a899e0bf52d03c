"""Ingest moves new results through the lifecycle's table: one audit row per group, events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from drivers.model import InboundMessage, Observation
from gateway import lifecycle
from gateway.config import TestConfig as MappingConfig
from gateway.ingest import store_message
from gateway.model import State
from gateway.rules import RuleContext
from gateway.store import audit as audit_log
from gateway.store.tables import audit, results
from gateway.store.writer import Event, GroupCommitWriter, Tx, run_in_transaction

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CONTEXT = RuleContext(tests={("", "CRP"): MappingConfig(code="CRP", nlk="NPU19748")})


def observation(code: str, specimen: str) -> Observation:
    return Observation(
        instrument_id="afinion-1",
        test_code=code,
        value="12",
        performed_at=NOW,
        specimen_id=specimen,
        patient_id="01010012356",
    )


def test_first_state_and_the_arrival_moves_are_in_the_table() -> None:
    assert lifecycle.first_state(held=True) is State.HELD
    assert lifecycle.first_state(held=False) is State.QUEUED
    for move in [(None, State.RECEIVED), (State.RECEIVED, State.HELD)]:
        lifecycle.check(*move)
    with pytest.raises(lifecycle.TransitionError):
        lifecycle.check(None, State.QUEUED)  # a result never skips "received"


async def test_a_message_moves_as_groups_with_one_audit_row_each(engine: Engine) -> None:
    seen: list[Event] = []
    writer = GroupCommitWriter(engine, on_events=seen.extend)
    writer.start()
    try:
        specimens = [f"S{i}" for i in range(5)]
        obs = [observation("CRP", s) for s in specimens] + [observation("GLU", "S9")]
        message = InboundMessage("afinion-1", "test", b"raw", NOW, observations=tuple(obs))
        outcome = await writer.write(lambda tx: store_message(tx, message, CONTEXT))
    finally:
        writer.stop()
    assert (outcome.stored, outcome.queued, outcome.held) == (6, 5, 1)
    with engine.connect() as conn:
        ids = list(conn.execute(select(results.c.id).order_by(results.c.id)).scalars())
        trail = conn.execute(select(audit).order_by(audit.c.id)).all()
        assert audit_log.verify(conn).ok
    first, held_id = ids[0], ids[-1]
    rows = [(r.action, r.entity_id, r.before, json.loads(r.after or "{}")) for r in trail]
    assert rows == [
        ("result.received", f"{first}-{held_id}", "", {"state": "received"}),
        (
            "result.held",
            str(held_id),
            '{"state":"received"}',
            {"state": "held", "holds": ["unmapped_test"]},
        ),
        ("result.queued", f"{first}-{ids[4]}", '{"state":"received"}', {"state": "queued"}),
    ]
    assert [(t.actor, t.reason) for t in trail][::2] == [
        ("instrument:afinion-1", "received from the instrument"),
        ("system", lifecycle.TRANSITIONS[(State.RECEIVED, State.QUEUED)]),
    ]
    assert seen == [
        ("result", "afinion-1", {"ids": [held_id], "to": "held", "reasons": ["unmapped_test"]}),
        ("result", "afinion-1", {"ids": ids[:5], "to": "queued"}),
    ]


def test_results_stored_by_ingest_move_on_through_the_table(engine: Engine) -> None:
    message = InboundMessage(
        "afinion-1", "test", b"raw", NOW, observations=(observation("GLU", "S1"),)
    )
    run_in_transaction(engine, lambda tx: store_message(tx, message, CONTEXT))
    # the state ingest stored is the one the table's next move expects
    run_in_transaction(
        engine, lambda tx: lifecycle.move(tx, [1], State.HELD, State.RELEASED, actor="kari")
    )
    run_in_transaction(
        engine, lambda tx: lifecycle.move(tx, [1], State.RELEASED, State.QUEUED, actor="kari")
    )
    with engine.connect() as conn:
        assert conn.execute(select(results.c.state)).scalar_one() == "queued"


def test_arrive_with_no_results_writes_nothing(engine: Engine) -> None:
    def job(tx: Tx) -> int:
        lifecycle.arrive(tx, [], [], actor="instrument:x", instrument="x")
        return len(tx.audit_entries) + len(tx.events)

    assert run_in_transaction(engine, job) == 0
