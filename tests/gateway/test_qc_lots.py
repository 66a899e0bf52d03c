"""Control lots and targets in the store: registering, finding, targets, usability."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TypeVar

import pytest
from sqlalchemy import Engine, select

from gateway.store import facts as store_facts
from gateway.store import qc_lots
from gateway.store.tables import audit as audit_log
from gateway.store.writer import Tx, run_in_transaction

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


T = TypeVar("T")


def run(engine: Engine, job: Callable[[Tx], T]) -> T:
    return run_in_transaction(engine, job, NOW)


def test_add_lot_with_manufacturer_target_and_find(engine: Engine) -> None:
    def add(tx: Tx) -> int:
        before = store_facts.current(tx).number
        lot_id = qc_lots.add_lot(
            tx,
            instrument_id="",
            test_code="HBA1C",
            level="1",
            lot="L100",
            person="kari",
            manufacturer_mean="5,5",
            manufacturer_sd="0.2",
            expires_on=date(2027, 1, 31),
        )
        assert store_facts.current(tx).number > before
        return lot_id

    lot_id = run(engine, add)
    with engine.connect() as conn:
        found = qc_lots.find_lot(conn, "afinion-1", "HBA1C", "1", "L100")
        assert found is not None and found.id == lot_id
        assert found.manufacturer_mean == Decimal("5.5")
        assert found.target is not None
        assert (found.target.mean, found.target.sd, found.target.source) == (
            Decimal("5.5"),
            Decimal("0.2"),
            "manufacturer",
        )
        assert qc_lots.find_lot(conn, "afinion-1", "HBA1C", "2", "L100") is None
        actions = list(conn.execute(select(audit_log.c.action)).scalars())
        assert "qc.lot_added" in actions and "qc.target_set" in actions


def test_instrument_lot_wins_and_new_target_supersedes(engine: Engine) -> None:
    def add(tx: Tx) -> tuple[int, int]:
        common = qc_lots.add_lot(
            tx, instrument_id="", test_code="CRP", level="H", lot="X", person="kari"
        )
        own = qc_lots.add_lot(
            tx, instrument_id="afinion-1", test_code="CRP", level="H", lot="X", person="kari"
        )
        qc_lots.set_target(tx, own, mean="50", sd="2", source="manual", person="kari")
        qc_lots.set_target(tx, own, mean="51", sd="2.5", source="manual", person="kari", note="ny")
        return common, own

    common, own = run(engine, add)
    with engine.connect() as conn:
        found = qc_lots.find_lot(conn, "afinion-1", "CRP", "H", "X")
        assert found is not None and found.id == own
        assert found.target is not None and found.target.mean == Decimal("51")
        other = qc_lots.find_lot(conn, "afinion-2", "CRP", "H", "X")
        assert other is not None and other.id == common and other.target is None
        assert [t.mean for t in qc_lots.list_targets(conn, own)] == [Decimal("50"), Decimal("51")]
        assert len(qc_lots.list_lots(conn, instrument_id="afinion-1")) == 2
        assert len(qc_lots.list_lots(conn, instrument_id="afinion-2", test_code="CRP")) == 1


def test_update_lot_audited_and_checked(engine: Engine) -> None:
    def job(tx: Tx) -> int:
        lot_id = qc_lots.add_lot(
            tx, instrument_id="", test_code="U", level="1", lot="A", person="p"
        )
        qc_lots.update_lot(tx, lot_id, person="p", active=False, opened_on=date(2026, 12, 1))
        with pytest.raises(ValueError):
            qc_lots.update_lot(tx, lot_id, person="p", lot="B")
        with pytest.raises(ValueError):
            qc_lots.set_target(tx, lot_id, mean="1", sd="0", source="manual", person="p")
        return lot_id

    lot_id = run(engine, job)
    with engine.connect() as conn:
        lot = qc_lots.get_lot(conn, lot_id)
        assert lot is not None and not lot.active and lot.opened_on == date(2026, 12, 1)
        row = conn.execute(select(audit_log).where(audit_log.c.action == "qc.lot_changed")).one()
        assert '"active":true' in row.before.replace(" ", "")
        assert '"active":false' in row.after.replace(" ", "")


def test_lot_usable() -> None:
    lot = qc_lots.Lot(
        1, "", "T", "1", "L", "", "", "quantitative", "", date(2027, 1, 31),
        date(2026, 12, 1), 30, None, None, "", None, True, None,
    )  # fmt: skip
    assert qc_lots.lot_usable(lot, date(2026, 12, 31)) is None
    assert qc_lots.lot_usable(lot, date(2027, 1, 1)) == "in_use_expired"
    assert qc_lots.lot_usable(lot, date(2027, 2, 1)) == "expired"
