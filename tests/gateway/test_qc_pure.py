"""The pure QC modules: schedule, status table, runs, targets, qualitative, the lockout rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from drivers.model import Method
from gateway.config import QcConfig
from gateway.model import HoldReason, Result
from gateway.qc import qualitative, schedule, status, targets
from gateway.qc.runs import OpenRun, assign
from gateway.rules import Facts, QcFact, QcStatus, RuleContext
from gateway.rules.qc import qc_lockout_rule

OSLO = ZoneInfo("Europe/Oslo")
T = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def test_daily_is_due_at_the_next_local_midnight() -> None:
    assert schedule.due_after("daily", T, zone=OSLO) == datetime(2026, 12, 7, 23, 0, tzinfo=UTC)
    late = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)  # 00:30 in Oslo on the 8th
    assert schedule.due_after("daily", late, zone=OSLO) == datetime(2026, 12, 8, 23, 0, tzinfo=UTC)
    assert schedule.due_after("weekly", T, zone=OSLO) == datetime(2026, 12, 13, 23, 0, tzinfo=UTC)
    assert schedule.due_after("shift", T, zone=OSLO, shift_hours=8) == T + timedelta(hours=8)
    for name in ("every_n", "new_lot", "none"):
        assert schedule.due_after(name, T, zone=OSLO) is None
    assert schedule.count_due(5, 5) and not schedule.count_due(4, 5)
    assert schedule.is_overdue(T, T) and not schedule.is_overdue(None, T)


def test_status_table() -> None:
    step = status.next_status(QcStatus.IN_CONTROL, "reject", locked=False, lockout="hold")
    assert (step.status, step.open_lockout) == (QcStatus.OUT_OF_CONTROL, True)
    off = status.next_status(QcStatus.IN_CONTROL, "reject", locked=False, lockout="off")
    assert (off.status, off.open_lockout) == (QcStatus.OUT_OF_CONTROL, False)
    held = status.next_status(QcStatus.OUT_OF_CONTROL, "accept", locked=True, lockout="hold")
    assert held.status is None and not held.open_lockout
    late = status.next_status(QcStatus.OUT_OF_CONTROL, "overdue", locked=False, lockout="off")
    assert late.status is None
    assert status.worst(["accept", "warning"]) == "warning"
    assert status.worst(["pass", "fail"]) == "reject"
    assert not status.lifts(accepted=True, corrective_action=False)
    assert status.lifts(accepted=True, corrective_action=True)


def test_runs_group_levels_within_the_window() -> None:
    keys, last = assign(
        None,
        [("1", T), ("2", T + timedelta(minutes=5)), ("1", T + timedelta(minutes=6))],
        60,
        lambda i: f"r{i}",
    )
    assert keys == ["r0", "r0", "r2"]
    assert last == OpenRun("r2", T + timedelta(minutes=6), frozenset({"1"}))
    open_run = OpenRun("old", T, frozenset({"1"}))
    assert assign(open_run, [("2", T + timedelta(minutes=61))], 60, str)[0] == ["0"]
    assert assign(open_run, [("2", T + timedelta(minutes=60))], 60, str)[0] == ["old"]


def test_targets_and_allowed_limit() -> None:
    mean, sd = targets.mean_sd([Decimal("47"), Decimal("48"), Decimal("49")])
    assert (mean, sd) == (Decimal("48.0000"), Decimal("1.0000"))
    with pytest.raises(ValueError):
        targets.mean_sd([Decimal("5"), Decimal("5")])
    assert targets.z_score(Decimal("52"), Decimal("48"), Decimal("2")) == Decimal("2.0000")
    assert targets.allowed_ok(Decimal("52"), Decimal("48")) is None
    assert targets.allowed_ok(Decimal("52"), Decimal("48"), allowed_percent=10) is True
    assert targets.allowed_ok(Decimal("53"), Decimal("48"), allowed_percent=10) is False
    assert targets.allowed_ok(Decimal("53"), Decimal("48"), allowed_absolute=5) is True


def test_qualitative() -> None:
    assert qualitative.judge("Negativ", "neg") == "pass"
    assert qualitative.judge(" POS ", "positive") == "pass"
    assert qualitative.judge("pos", "neg") == "fail"


def _result(performed_at: datetime | None = T) -> Result:
    return Result(
        "afinion-1", "HbA1c", "48", "NM", "mmol/mol", "", (), Method.MEASURED, performed_at,
        "OLA", "S1", "01010012356",
    )  # fmt: skip


def _context(fact: QcFact | None, lockout: str = "hold") -> RuleContext:
    facts = Facts(qc={("afinion-1", "HbA1c"): fact} if fact else {})
    entry = QcConfig(test="HbA1c", lockout=lockout)  # type: ignore[arg-type]
    return RuleContext(qc={("afinion-1", "HbA1c"): entry}, facts=facts, zone=OSLO)


def test_lockout_rule() -> None:
    locked = QcFact(QcStatus.OUT_OF_CONTROL, T - timedelta(hours=1), None, 4, "2-2s")
    (hold,) = qc_lockout_rule(_result(), _context(locked))
    assert hold.reason == HoldReason.QC_LOCKOUT and hold.release_role == "supervisor"
    params = dict(hold.params)
    assert (params["qc_state"], params["rules"]) == ("out_of_control", "2-2s")
    assert params["since"] == "2026-12-07 10:00"  # Oslo time
    assert qc_lockout_rule(_result(), _context(locked, lockout="flag")) == ()
    assert qc_lockout_rule(_result(), RuleContext()) == ()
    fine = QcFact(QcStatus.IN_CONTROL, T - timedelta(days=1), T + timedelta(minutes=1))
    assert qc_lockout_rule(_result(), _context(fine)) == ()
    due = QcFact(QcStatus.IN_CONTROL, T - timedelta(days=1), T - timedelta(minutes=1))
    (late,) = qc_lockout_rule(_result(), _context(due))
    assert dict(late.params)["qc_state"] == "overdue"
    assert qc_lockout_rule(_result(), _context(QcFact(QcStatus.NO_QC, T))) == ()
