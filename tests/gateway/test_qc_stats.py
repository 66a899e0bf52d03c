"""Monthly QC statistics: a hand-computed example, the month's bounds at the site, and the
statistics read back from a store."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.qc.points import QcPoint, number
from gateway.qc.stats import Month, month_stats
from gateway.store import qc_history
from gateway.store.engine import make_engine, upgrade
from tests.gateway import qc_chart_data

OSLO = ZoneInfo("Europe/Oslo")
T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def point(
    qc_id: int,
    value: str,
    *,
    lot: str = "L1",
    verdict: str = "accept",
    target: tuple[float, float] | None = (5.0, 0.2),
) -> QcPoint:
    return QcPoint(
        qc_result_id=qc_id,
        instrument_id="afinion-1",
        test_code="CRP",
        level="1",
        lot=lot,
        at=T0 + timedelta(hours=qc_id),
        value_text=value,
        unit="mg/L",
        performed_by="kari",
        verdict=verdict,
        target_mean=None if target is None else target[0],
        target_sd=None if target is None else target[1],
    )


def test_a_hand_computed_month() -> None:
    # 5.0, 5.2, 4.8, 5.4: mean 5.1; deviations -0.1, 0.1, -0.3, 0.3; squares sum 0.20;
    # SD = sqrt(0.20 / 3) = 0.2582; CV = 0.2582 / 5.1 = 5.06 %; bias = (5.1 - 5.0) / 5.0 = 2.0 %
    rows = month_stats(
        [
            point(1, "5.0"),
            point(2, "5,2"),
            point(3, "4.8", verdict="warning"),
            point(4, "5.4", verdict="reject"),
            point(5, "neg", target=None),
        ]
    )
    assert len(rows) == 1
    row = rows[0]
    assert row.n == 4  # the qualitative "neg" is not a number
    assert row.mean == pytest.approx(5.1)
    assert row.sd == pytest.approx(math.sqrt(0.20 / 3))
    assert row.sd == pytest.approx(0.2582, abs=1e-4)
    assert row.cv_percent == pytest.approx(5.0627, abs=1e-3)
    assert row.bias_percent == pytest.approx(2.0)
    assert (row.warnings, row.rejects, row.targets) == (1, 1, 1)
    assert row.unit == "mg/L"


def test_one_value_has_no_sd_and_each_lot_has_its_row() -> None:
    rows = month_stats([point(1, "5.0"), point(2, "6.0", lot="L2", target=(6.2, 0.3))])
    assert [(r.lot, r.n, r.sd, r.cv_percent) for r in rows] == [
        ("L1", 1, None, None),
        ("L2", 1, None, None),
    ]
    assert rows[1].bias_percent == pytest.approx((6.0 - 6.2) / 6.2 * 100)


def test_a_changed_target_is_counted_and_the_last_one_is_used() -> None:
    rows = month_stats([point(1, "5.0"), point(2, "5.1", target=(5.2, 0.2))])
    assert rows[0].targets == 2
    assert rows[0].target_mean == 5.2


def test_the_month_is_the_sites_calendar_month() -> None:
    month = Month.parse("2026-12")
    start, end = month.bounds(OSLO)
    assert start.astimezone(UTC) == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert end.astimezone(UTC) == datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    assert Month.of(datetime(2026, 11, 30, 23, 30, tzinfo=UTC), OSLO) == month
    assert str(month.next()) == "2027-01" and str(month.previous()) == "2026-11"
    for bad in ("2026-13", "2026-1", "december", ""):
        with pytest.raises(ValueError):
            Month.parse(bad)
    assert number("5,2") == 5.2 and number("nan") is None and number("neg") is None


def test_the_statistics_of_a_stored_month(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'qc.sqlite3'}")
    upgrade(engine)
    qc_chart_data.seed(engine)
    start, end = Month.parse("2026-12").bounds(OSLO)
    with engine.connect() as conn:
        points = qc_history.month_points(conn, start, end)
        november = qc_history.month_points(conn, *Month.parse("2026-11").bounds(OSLO))
    engine.dispose()
    assert november == []
    rows = month_stats(points)
    assert [(r.level, r.lot, r.n) for r in rows] == [("1", "L1", 8), ("2", "L2", 3)]
    level1 = rows[0]
    values = qc_chart_data.LEVEL1
    mean = sum(values) / len(values)
    assert level1.mean == pytest.approx(mean)
    assert level1.sd == pytest.approx(
        math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    )
    assert level1.target_mean == 42.5 and level1.targets == 2
    assert (level1.warnings, level1.rejects) == (1, 1)
    assert rows[1].mean == pytest.approx(85.0) and rows[1].bias_percent == pytest.approx(0.0)
