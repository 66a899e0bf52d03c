"""The worklist in the store, on SQLite and PostgreSQL: place, resend, cancel, answer, audit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select

from drivers.model import OrderAction, OrderRequest, WorklistOrder
from gateway.orders.store import (
    ORDER_SOURCE,
    OrderConflict,
    StoreWorklist,
    apply_orders,
    list_orders,
    open_orders,
    store_order_message,
)
from gateway.store import audit as audit_log
from gateway.store.tables import audit, orders, quarantine, raw_messages
from gateway.store.writer import run_in_transaction

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
FNR = "01010012356"


def new(specimen: str, *codes: str, patient: str = FNR, priority: str = "R") -> OrderRequest:
    return OrderRequest(OrderAction.NEW, specimen, codes, patient, priority, placer_order="P1")


def cancel(specimen: str, *codes: str) -> OrderRequest:
    return OrderRequest(OrderAction.CANCEL, specimen, codes)


def place(engine: Engine, *requests: OrderRequest, actor: str = "kari") -> tuple[int, int, int]:
    outcome = run_in_transaction(
        engine, lambda tx: apply_orders(tx, requests, actor=actor, reason="test"), NOW
    )
    return outcome.placed, outcome.cancelled, outcome.unchanged


def test_placed_orders_answer_the_specimen_as_one_order(engine: Engine) -> None:
    assert place(engine, new("S1", "HBA1C", "CRP"), new("S2", "WBC", priority="S")) == (3, 0, 0)
    with engine.connect() as conn:
        assert open_orders(conn, "S1") == (WorklistOrder("S1", FNR, ("HBA1C", "CRP"), "R"),)
        assert open_orders(conn, "S2")[0].priority == "S"
        assert open_orders(conn, "S3") == ()


def test_a_resent_order_is_not_doubled_and_urgency_wins(engine: Engine) -> None:
    place(engine, new("S1", "HBA1C"))
    assert place(engine, new("S1", "HBA1C", "CRP", priority="S")) == (1, 0, 1)
    with engine.connect() as conn:
        (order,) = open_orders(conn, "S1")
        count = len(conn.execute(select(orders.c.id).where(orders.c.specimen_id == "S1")).all())
    assert order.test_codes == ("HBA1C", "CRP") and order.priority == "S" and count == 2


def test_cancel_one_test_then_the_rest(engine: Engine) -> None:
    place(engine, new("S1", "HBA1C", "CRP", "ACR"))
    assert place(engine, cancel("S1", "CRP", "NOPE")) == (0, 1, 1)
    with engine.connect() as conn:
        assert open_orders(conn, "S1")[0].test_codes == ("HBA1C", "ACR")
    assert place(engine, cancel("S1")) == (0, 2, 0)
    with engine.connect() as conn:
        assert open_orders(conn, "S1") == ()
        states = [row["state"] for row in list_orders(conn, state=None)]
    assert states == ["cancelled"] * 3
    # after a cancel the same test can be ordered again
    assert place(engine, new("S1", "CRP")) == (1, 0, 0)


def test_every_change_is_audited_with_the_actor_and_the_chain_holds(engine: Engine) -> None:
    place(engine, new("S1", "HBA1C", "CRP"), actor="kari")
    place(engine, cancel("S1", "CRP"), actor="ola")
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit.c.actor, audit.c.action, audit.c.entity_id)
            .where(audit.c.entity == "order")
            .order_by(audit.c.id)
        ).all()
        ids = [int(i) for (i,) in conn.execute(select(orders.c.id).order_by(orders.c.id))]
        assert audit_log.verify(conn).ok
    assert [(r.actor, r.action) for r in rows] == [
        ("kari", "order.placed"),
        ("ola", "order.cancelled"),
    ]
    assert audit_log.expand_ids(rows[0].entity_id) == ids
    assert audit_log.expand_ids(rows[1].entity_id) == [ids[1]]


def test_list_masks_the_patient_and_says_when_no_result_arrived(engine: Engine) -> None:
    place(engine, new("S1", "HBA1C"))
    with engine.connect() as conn:
        (line,) = list_orders(conn)
    assert line["patient"] == "010100*****" and FNR not in str(line)
    assert line["resulted"] is False and line["placed_by"] == "kari"


def test_an_order_message_keeps_its_bytes_and_a_refused_one_goes_to_quarantine(
    engine: Engine,
) -> None:
    raw = b"MSH|^~\\&|LIS||TRYGG||20261122||ORM^O01|C1|P|2.5.1\r"
    outcome = run_in_transaction(
        engine,
        lambda tx: store_order_message(tx, raw, NOW, [new("S9", "CRP")], control_id="C1"),
        NOW,
    )
    assert outcome.placed == 1 and not outcome.quarantined
    bad = run_in_transaction(
        engine,
        lambda tx: store_order_message(
            tx, b"junk", NOW, None, error="MSH-9: not an order message", error_field="MSH-9"
        ),
        NOW,
    )
    assert bad.quarantined and bad.placed == 0
    with engine.connect() as conn:
        kept = conn.execute(
            select(
                raw_messages.c.raw, raw_messages.c.outcome, raw_messages.c.instrument_id
            ).order_by(raw_messages.c.id)
        ).all()
        held = conn.execute(select(quarantine.c.field, quarantine.c.raw_message_id)).one()
        line = conn.execute(select(orders.c.raw_message_id)).scalar_one()
    assert [(bytes(r.raw), r.outcome) for r in kept] == [(raw, "stored"), (b"junk", "quarantined")]
    assert {r.instrument_id for r in kept} == {ORDER_SOURCE}
    assert held.field == "MSH-9" and line == bad.raw_message_id - 1


def test_store_worklist_reads_off_the_event_loop(engine: Engine) -> None:
    place(engine, new("S1", "CRP"))
    worklist = StoreWorklist(engine)
    assert asyncio.run(worklist("S1"))[0].test_codes == ("CRP",)
    assert asyncio.run(worklist("missing")) == ()


def test_an_order_for_another_patient_on_an_open_specimen_is_refused(engine: Engine) -> None:
    place(engine, new("S1", "CRP"))
    other = new("S1", "HBA1C", patient="02020212345")
    with pytest.raises(OrderConflict, match="another patient"):
        place(engine, other)
    # from the LIS: the whole message is refused into quarantine, the worklist unchanged
    outcome = run_in_transaction(
        engine, lambda tx: store_order_message(tx, b"MSH|x", NOW, [other], control_id="C2"), NOW
    )
    assert outcome.quarantined and "another patient" in outcome.error
    assert "02020212345" not in outcome.error
    with engine.connect() as conn:
        assert open_orders(conn, "S1")[0].test_codes == ("CRP",)
        assert conn.execute(select(quarantine.c.field)).scalar_one() == "PID-3"
    # once the old orders are cancelled, the specimen can take the other patient's order
    place(engine, cancel("S1"))
    assert place(engine, other) == (1, 0, 0)
