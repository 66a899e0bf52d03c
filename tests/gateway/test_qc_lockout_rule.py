"""The QC lockout rule on its own (pure): which results it holds, with what the texts say."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drivers.model import Method
from gateway.config import QcConfig
from gateway.model import HoldReason, Result
from gateway.rules import RULES, RuleContext, qc_flag, qc_lockout_rule
from gateway.rules.facts import Facts, QcFact, QcStatus
from gateway.texts import hold_todo, hold_why

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
KEY = ("an-1", "CRP")


def result(at: datetime | None = NOW, test: str = "CRP") -> Result:
    return Result(
        instrument_id="an-1",
        test_code=test,
        value="5",
        value_type="NM",
        unit="mg/L",
        reference_range="",
        abnormal_flags=(),
        method=Method.MEASURED,
        performed_at=at,
        operator_id="",
        specimen_id="S1",
        patient_id="",
    )


def context(fact: QcFact | None, lockout: str = "hold") -> RuleContext:
    qc = {KEY: QcConfig(test="CRP", lockout=lockout)}  # type: ignore[arg-type]
    return RuleContext(qc=qc, facts=Facts(qc={KEY: fact} if fact else {}), now=NOW)


def test_the_rule_is_registered() -> None:
    assert qc_lockout_rule in RULES


def test_out_of_control_holds_with_texts_in_both_languages() -> None:
    fact = QcFact(QcStatus.OUT_OF_CONTROL, NOW - timedelta(hours=1), None, 7, rules="2-2s")
    (hold,) = qc_lockout_rule(result(), context(fact))
    assert hold.reason == HoldReason.QC_LOCKOUT
    assert hold.release_role == "supervisor"
    params = dict(hold.params)
    assert params["qc_state"] == "out_of_control" and params["rules"] == "2-2s"
    assert params["since"] == "2026-12-07 10:00"  # Oslo time of 09:00 UTC
    stored = {"reason": hold.reason, "params": params}
    nb, en = hold_why("nb", stored), hold_why("en", stored)
    assert "CRP" in nb and "an-1" in nb and "utenfor kontroll" in nb and "2-2s" in nb
    assert "–" not in nb and "–" not in en
    assert "korrigerende tiltak" in hold_todo("nb", stored)


def test_in_control_and_not_due_goes_on() -> None:
    fact = QcFact(QcStatus.IN_CONTROL, NOW - timedelta(days=1), NOW + timedelta(hours=3))
    assert qc_lockout_rule(result(), context(fact)) == ()


def test_a_result_performed_after_the_due_time_is_held_overdue() -> None:
    fact = QcFact(QcStatus.IN_CONTROL, NOW - timedelta(days=1), NOW - timedelta(minutes=1))
    (hold,) = qc_lockout_rule(result(), context(fact))
    assert dict(hold.params)["qc_state"] == "overdue"
    # performed before the due time (sent late): it goes on
    assert qc_lockout_rule(result(NOW - timedelta(minutes=5)), context(fact)) == ()
    # no performed time: the transaction's time counts
    assert len(qc_lockout_rule(result(None), context(fact))) == 1


def test_flag_off_no_entry_or_no_status_hold_nothing() -> None:
    fact = QcFact(QcStatus.OUT_OF_CONTROL, NOW, None, 7)
    assert qc_lockout_rule(result(), context(fact, lockout="flag")) == ()
    assert qc_lockout_rule(result(), context(fact, lockout="off")) == ()
    assert qc_lockout_rule(result(test="HBA1C"), context(fact)) == ()
    assert qc_lockout_rule(result(), context(None)) == ()


def test_flag_mode_names_the_same_as_a_hold_and_only_in_flag_mode() -> None:
    fact = QcFact(QcStatus.OUT_OF_CONTROL, NOW - timedelta(hours=1), None, 7, rules="2-2s")
    (hold,) = qc_lockout_rule(result(), context(fact))
    assert qc_flag(result(), context(fact, lockout="flag")) == hold.params
    assert qc_flag(result(), context(fact)) is None  # "hold" holds, it does not flag
    assert qc_flag(result(), context(fact, lockout="off")) is None
    in_control = QcFact(QcStatus.IN_CONTROL, NOW - timedelta(days=1), NOW + timedelta(hours=3))
    assert qc_flag(result(), context(in_control, lockout="flag")) is None
