"""The e2e bench's qc=on variant: its config has a [[qc]] entry for every simulator test, the
seeded store gives the QC lockout rule an in-control fact per analyser and test, and a result
goes on (while one measured after the due time would be held)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.harness import RigOptions, config_text, instrument_id
from bench.qc_status import seed_qc_status
from drivers.model import Method
from gateway.config import load_config
from gateway.model import HoldReason, Result
from gateway.rules import context_from_config, qc_lockout_rule
from gateway.rules.facts import QcStatus
from gateway.store.engine import make_engine
from gateway.store.facts import load_facts
from simulators.hl7_analyser import TESTS

CODES = [code for code, *_ in TESTS]


def _result(instrument: str, code: str, at: datetime) -> Result:
    return Result(
        instrument_id=instrument,
        test_code=code,
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


def test_qc_on_configures_every_test_and_seeds_in_control_facts(tmp_path: Path) -> None:
    store = tmp_path / "gateway.sqlite3"
    options = RigOptions(analysers=3, qc=True)
    path = tmp_path / "bench.toml"
    path.write_text(config_text(options, store, [40001, 40002, 40003], 40000), encoding="utf-8")
    config = load_config(path)
    assert sorted(entry.test for entry in config.qc) == sorted(CODES)
    seed_qc_status(store, analysers=3, codes=CODES, instrument_id=instrument_id)
    engine = make_engine(f"sqlite:///{store}")
    try:
        with engine.connect() as conn:
            facts = load_facts(conn)
    finally:
        engine.dispose()
    assert len(facts.qc) == 3 * len(CODES)
    assert {fact.status for fact in facts.qc.values()} == {QcStatus.IN_CONTROL}
    context = context_from_config(config)
    context = dataclasses.replace(context, facts=facts)
    now = datetime.now(UTC)
    for index in range(3):
        for code in CODES:
            assert qc_lockout_rule(_result(instrument_id(index), code, now), context) == ()
    late = qc_lockout_rule(_result("an-002", "CRP", now + timedelta(days=2)), context)
    assert [hold.reason for hold in late] == [HoldReason.QC_LOCKOUT]


def test_qc_off_configures_no_qc(tmp_path: Path) -> None:
    path = tmp_path / "bench.toml"
    path.write_text(
        config_text(RigOptions(analysers=1), tmp_path / "s.sqlite3", [40001], 40000),
        encoding="utf-8",
    )
    assert load_config(path).qc == []
