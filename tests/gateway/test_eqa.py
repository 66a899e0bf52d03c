"""EQA (EKV) rounds and split samples: the pure rules (the round's moves, the grades, the
split-sample difference with its boundary) and the store's commands over a real SQLite store
with results ingested through the real ingest path (who may act, linking by specimen ID, the
signed answer and assessment, deviations for poor grades and split samples outside the
allowed difference)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from gateway.config import parse_config
from gateway.qc import eqa
from gateway.qc.eqa import Assessment, EqaRuleError, Grade, RoundState, judge_split
from gateway.store import eqa as store
from gateway.store.engine import make_engine, upgrade
from gateway.store.tables import deviations, results, signatures
from gateway.store.writer import run_in_transaction
from tests.web.work_site import NOW, arrive, prepare_store, site_config, site_data

# --- pure ------------------------------------------------------------------------------------


def test_the_round_moves_only_forward_one_step_at_a_time() -> None:
    assert eqa.may_move(None, RoundState.REGISTERED)
    assert eqa.may_move(RoundState.REGISTERED, RoundState.ANSWERED)
    assert eqa.may_move(RoundState.ANSWERED, RoundState.ASSESSED)
    assert not eqa.may_move(RoundState.REGISTERED, RoundState.ASSESSED)
    assert not eqa.may_move(RoundState.ASSESSED, RoundState.ANSWERED)
    with pytest.raises(EqaRuleError) as refused:
        eqa.check_move(RoundState.ANSWERED, RoundState.ANSWERED)
    assert refused.value.code == "state_answered"


def test_grades_parse_and_poor_names_the_qualities() -> None:
    made = eqa.assessment("good", "", "POOR")
    assert made == Assessment(Grade.GOOD, None, Grade.POOR)
    assert made.poor == ("precision",)
    assert eqa.assessment("acceptable", "-", "").poor == ()
    with pytest.raises(EqaRuleError, match="no_grade"):
        eqa.assessment("", "-", " ")
    with pytest.raises(EqaRuleError, match="bad_grade"):
        eqa.assessment("god", "", "")  # codes, not the report's words


@pytest.mark.parametrize(
    ("local", "central", "allowed", "difference", "within"),
    [
        ("11.5", "10.0", 15.0, "+15.0", True),  # exactly the limit: within (binary float: not)
        ("8,5", "10", 15.0, "-15.0", True),  # a decimal comma
        ("11.6", "10.0", 15.0, "+16.0", False),
        ("11.6", "10.0", None, "+16.0", True),  # default 20 %
        ("12.01", "10.0", None, "+20.1", False),
        ("5.0", "5.0", 20.0, "+0.0", True),
    ],
)
def test_split_difference_is_percent_of_the_central_value(
    local: str, central: str, allowed: float | None, difference: str, within: bool
) -> None:
    judged = judge_split(local, central, allowed)
    assert judged.difference_text == difference
    assert judged.within is within
    assert judged.allowed_percent == Decimal(str(allowed or 20.0))


def test_split_refuses_what_is_not_a_number_and_a_zero_central_value() -> None:
    with pytest.raises(EqaRuleError, match="not_number"):
        judge_split("<0.5", "1.0", None)
    with pytest.raises(EqaRuleError, match="central_zero"):
        judge_split("1.0", "0", None)


def test_overdue_is_a_registered_round_past_its_due_date() -> None:
    due = date(2026, 12, 10)
    assert eqa.overdue(RoundState.REGISTERED, due, date(2026, 12, 11))
    assert not eqa.overdue(RoundState.REGISTERED, due, due)
    assert not eqa.overdue(RoundState.ANSWERED, due, date(2027, 1, 1))


def test_split_allowed_percent_is_an_optional_test_setting() -> None:
    data = site_data()
    data["tests"][0]["split_allowed_percent"] = 15
    config = parse_config(data, "<t>")
    assert config.tests[0].split_allowed_percent == 15.0
    assert config.tests[1].split_allowed_percent is None
    data["tests"][0]["split_allowed_percent"] = 0
    with pytest.raises(Exception, match="split_allowed_percent"):
        parse_config(data, "<t>")


# --- the store -------------------------------------------------------------------------------


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """On SQLite and on PostgreSQL."""
    engine = make_engine(store_url)
    upgrade(engine)
    prepare_store(engine, site_config())
    yield engine
    engine.dispose()


def run(engine: Engine, job):  # type: ignore[no-untyped-def]
    return run_in_transaction(engine, job, NOW)


def register(engine: Engine, actor: str = "hilde") -> int:
    return int(
        run(
            engine,
            lambda tx: store.register_round(
                tx,
                scheme="Noklus HbA1c",
                shipment="2026-4",
                instrument_id="afinion-1",
                received_on=date(2026, 12, 1),
                due_on=date(2026, 12, 14),
                samples=[("S1", "HBA1C"), ("S2", "HBA1C")],
                actor=actor,
            ),
        )
    )


def sample_id(engine: Engine, round_id: int, label: str) -> int:
    with engine.connect() as conn:
        return store.sample_ids(conn, round_id)[(label, "HBA1C")]


def refused(engine: Engine, job) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(EqaRuleError) as caught:
        run(engine, job)
    return caught.value.code


def test_who_may_register_a_round(engine: Engine) -> None:
    assert refused(engine, lambda tx: register_job(tx, "bente")) == "no_role"  # a verifier
    assert refused(engine, lambda tx: register_job(tx, "nobody")) == "unknown_person"
    round_id = register(engine, "siri")  # a supervisor
    with engine.connect() as conn:
        found = store.get_round(conn, round_id)
    assert found is not None
    assert found["state"] == "registered" and found["created_by"] == "siri"
    assert [s["sample"] for s in found["samples"]] == ["S1", "S2"]
    # the same shipment on the same instrument twice is refused
    assert refused(engine, lambda tx: register_job(tx, "hilde")) == "duplicate"


def register_job(tx, actor: str) -> int:  # type: ignore[no-untyped-def]
    return store.register_round(
        tx, scheme="Noklus HbA1c", shipment="2026-4", instrument_id="afinion-1", actor=actor
    )


def test_a_round_from_linking_to_assessment_with_a_poor_grade(engine: Engine) -> None:
    config = site_config()
    round_id = register(engine)
    measured = arrive(
        engine,
        config,
        instrument="afinion-1",
        test="HBA1C",
        value="53",
        unit="mmol/mol",
        operator="BH",
        specimen="EKV-S1",
    )
    with engine.connect() as conn:
        state_before = conn.execute(select(results).where(results.c.id == measured)).one()
    s1, s2 = sample_id(engine, round_id, "S1"), sample_id(engine, round_id, "S2")
    # an operator may not enter values; a verifier may
    assert refused(engine, lambda tx: store.enter_value(tx, s2, value="1", actor="tone")) == (
        "no_role"
    )
    linked = run(engine, lambda tx: store.link_sample(tx, s1, specimen_id="EKV-S1", actor="bente"))
    assert linked == measured
    assert (
        refused(engine, lambda tx: store.link_sample(tx, s2, specimen_id="EKV-S9", actor="bente"))
        == "no_result"
    )
    # answering needs a value for every sample
    assert refused(engine, lambda tx: store.answer_round(tx, round_id, actor="bente")) == "no_value"
    run(engine, lambda tx: store.enter_value(tx, s2, value="71", unit="mmol/mol", actor="bente"))
    # no assessment before the answer
    grades = eqa.assessment("good", "good", "good")
    assert (
        refused(engine, lambda tx: store.assess_sample(tx, s1, grades=grades, actor="hilde"))
        == "state_registered"
    )
    signature = run(engine, lambda tx: store.answer_round(tx, round_id, actor="bente"))
    # the values are frozen once answered
    assert (
        refused(engine, lambda tx: store.enter_value(tx, s2, value="70", actor="bente"))
        == "state_answered"
    )
    # a verifier may not record the programme's assessment
    assert (
        refused(engine, lambda tx: store.assess_sample(tx, s1, grades=grades, actor="bente"))
        == "no_role"
    )
    first = run(
        engine,
        lambda tx: store.assess_sample(tx, s1, grades=grades, target_value="52", actor="hilde"),
    )
    assert first.deviation_id is None and first.round_state is RoundState.ANSWERED
    poor = eqa.assessment("poor", "acceptable", "")
    second = run(
        engine,
        lambda tx: store.assess_sample(
            tx, s2, grades=poor, target_value="62", note="kalibrert", actor="hilde"
        ),
    )
    assert second.round_state is RoundState.ASSESSED and second.deviation_id is not None
    assert (
        refused(engine, lambda tx: store.assess_sample(tx, s2, grades=poor, actor="hilde"))
        == "state_assessed"
    )
    with engine.connect() as conn:
        found = store.get_round(conn, round_id)
        signed = conn.execute(select(signatures).order_by(signatures.c.id)).all()
        deviation = conn.execute(
            select(deviations).where(deviations.c.id == second.deviation_id)
        ).one()
        state_after = conn.execute(select(results).where(results.c.id == measured)).one()
        listed = store.list_rounds(conn)
    assert found is not None
    assert found["state"] == "assessed" and found["assessed_by"] == "hilde"
    assert found["answered_by"] == "bente"
    by_label = {s["sample"]: s for s in found["samples"]}
    assert by_label["S1"]["value"] == "53" and by_label["S1"]["specimen"] == "EKV-S1"
    assert by_label["S1"]["result_id"] == measured
    assert by_label["S2"]["result_id"] is None and by_label["S2"]["trueness"] == "poor"
    assert by_label["S2"]["deviation_id"] == second.deviation_id
    # the signatures: the answer (with what was answered), then each assessment
    meanings = [(s.person, s.meaning) for s in signed[-3:]]
    assert meanings == [("bente", "eqa_answer"), ("hilde", "eqa_assess"), ("hilde", "eqa_assess")]
    assert signed[-3].id == signature
    assert json.loads(signed[-3].detail)["values"] == {
        "S1/HBA1C": "53 mmol/mol",
        "S2/HBA1C": "71 mmol/mol",
    }
    assert deviation.kind == "eqa_poor" and deviation.category == "quality"
    assert deviation.responsible_function == "Kvalitetsansvarlig"
    assert "poor trueness" in deviation.summary and "target 62" in deviation.detail
    # linking changed nothing on the measured result
    assert state_after._mapping == state_before._mapping
    assert listed[0]["poor"] == 1 and listed[0]["assessed"] == 2


def test_split_samples_typed_or_linked_and_a_deviation_outside_the_limit(engine: Engine) -> None:
    config = site_config()
    measured = arrive(
        engine,
        config,
        instrument="afinion-1",
        test="CRP",
        value="46",
        operator="BH",
        specimen="SPLIT-7",
    )
    inside = run(
        engine,
        lambda tx: store.record_split(
            tx,
            instrument_id="afinion-1",
            test_code="CRP",
            sample="P-1",
            local_value="11,5",
            central_value="10.0",
            allowed_percent=15.0,
            measured_on=date(2026, 12, 3),
            actor="morten",
        ),
    )
    assert inside.judgement.within and inside.deviation_id is None
    outside = run(
        engine,
        lambda tx: store.record_split(
            tx,
            instrument_id="afinion-1",
            test_code="CRP",
            sample="",
            specimen_id="SPLIT-7",
            central_value="38",
            allowed_percent=None,
            actor="morten",
        ),
    )
    assert outside.result_id == measured
    assert not outside.judgement.within and outside.deviation_id is not None
    assert (
        refused(
            engine,
            lambda tx: store.record_split(
                tx,
                instrument_id="afinion-1",
                test_code="CRP",
                sample="P-3",
                local_value="1",
                central_value="1",
                allowed_percent=None,
                actor="tone",
            ),
        )
        == "no_role"
    )
    with engine.connect() as conn:
        rows = store.list_splits(conn)
        deviation = conn.execute(
            select(deviations).where(deviations.c.id == outside.deviation_id)
        ).one()
        meanings = conn.execute(
            select(signatures.c.meaning).where(signatures.c.person == "morten")
        ).scalars()
        assert list(meanings) == ["split_sample", "split_sample"]
    assert [r["sample"] for r in rows] == ["SPLIT-7", "P-1"]  # newest first
    assert rows[0]["difference_percent"] == "+21.1" and rows[0]["allowed_percent"] == "20.0"
    assert rows[1]["local_value"] == "11.5" and rows[1]["within"] is True
    assert deviation.kind == "split_sample" and deviation.category == "quality"
