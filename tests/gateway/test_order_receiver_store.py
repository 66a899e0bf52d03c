"""The LIS order port while the store is failed: nothing written, AR with ERR 207, and the
LIS sends the message again (issue 9 item 4, the order port as the analysers' ports)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from drivers.model import OrderAction, OrderRequest
from drivers.protocols.hl7.ack import parse_ack
from drivers.protocols.hl7.orders import build_order_message
from gateway.orders.receiver import OrderReceiver
from gateway.orders.store import list_orders
from gateway.store.engine import make_engine, upgrade
from gateway.store.writer import GroupCommitWriter

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
FNR = "15037212382"
ORDER = build_order_message(
    [OrderRequest(OrderAction.NEW, "S-100", ("GLU",), FNR, "R", "R-1")], control_id="O1", now=NOW
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'orders.sqlite3'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def raw_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM raw_messages")).scalar_one())


async def test_a_failed_store_answers_ar_207_and_writes_nothing(engine: Engine) -> None:
    healthy = [False]
    writer = GroupCommitWriter(engine)
    writer.start()
    try:
        receiver = OrderReceiver(writer, accepting=lambda: healthy[0])
        refused = parse_ack(await receiver._handle(ORDER))
        assert (refused.code, refused.error_code) == ("AR", "207")
        assert "send it again" in refused.text
        assert raw_count(engine) == 0
        healthy[0] = True  # healed: the LIS's resend is stored and placed
        again = parse_ack(await receiver._handle(ORDER))
    finally:
        writer.stop()
    assert again.code == "AA"
    with engine.connect() as conn:
        assert [o["specimen_id"] for o in list_orders(conn, state=None)] == ["S-100"]


async def test_a_write_that_fails_answers_ar_207(engine: Engine) -> None:
    with engine.begin() as conn:  # a broken store: the orders table is gone
        conn.execute(text("DROP TABLE orders"))
    writer = GroupCommitWriter(engine)
    writer.start()
    try:
        ack = parse_ack(await OrderReceiver(writer)._handle(ORDER))
    finally:
        writer.stop()
    assert (ack.code, ack.error_code) == ("AR", "207")
