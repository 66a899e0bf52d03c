"""Manual result entry: every mistake named by field and code, and a valid entry stored as a
manual result that waits for verification, through the instrument results' rules, audited."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from drivers.model import Method
from gateway import catalogue
from gateway.manual import (
    ERROR_CODES,
    FIELDS,
    PROTOCOL,
    EntryError,
    check_entry,
    check_value,
    choices,
    error_messages,
    operator_id_for,
)
from gateway.model import HoldReason, State
from gateway.people.certification import CertStatus
from gateway.people.roles import Role
from gateway.rules import RULES, run_rules
from gateway.rules.facts import Facts, Person
from gateway.store.engine import make_engine, upgrade
from gateway.store.results import RESULT_COLUMNS, from_row
from gateway.store.tables import audit, holds, raw_messages, results
from tests.gateway.manual_fixtures import (
    FNR,
    FNR_2,
    NOW,
    PersonSpec,
    add_people,
    enter,
    entry,
    rule_context,
    site_config,
)

PEOPLE = Facts(
    people={
        "kari": Person("kari", roles=frozenset({Role.OPERATOR})),
        "gone": Person("gone", roles=frozenset({Role.OPERATOR}), active=False),
        "ada": Person("ada", roles=frozenset({Role.ADMIN})),
    },
    operators={("afinion-1", "KB1"): "kari", ("", "KB"): "kari", ("", "ZZ"): "ada"},
)
CONTEXT = dataclasses.replace(rule_context(), facts=PEOPLE)


def errors_of(typed: Any, person: str = "kari", context: Any = CONTEXT) -> set[tuple[str, str]]:
    checked = check_entry(typed, person, context, NOW)
    return {(e.field, e.code) for e in checked.errors}


# --- checking (pure) -------------------------------------------------------------------------


def test_a_valid_entry_becomes_a_manual_observation() -> None:
    checked = check_entry(entry(), "kari", CONTEXT, NOW)
    assert checked.errors == ()
    obs = checked.observation
    assert obs is not None
    assert (obs.instrument_id, obs.test_code, obs.value, obs.unit) == (
        "afinion-1",
        "HbA1c",
        "48.5",  # the decimal comma Norwegians type, as HL7 wants it
        "mmol/mol",
    )
    assert obs.method is Method.MANUAL and obs.value_type == "NM"
    assert obs.operator_id == "KB1"  # her ID on that instrument before her ID for any
    assert obs.patient_id == FNR and obs.specimen_id == "S1"
    assert obs.performed_at == datetime(2026, 12, 7, 8, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"instrument_id": ""}, ("instrument_id", "required")),
        ({"instrument_id": "sysmex-9"}, ("instrument_id", "unknown_instrument")),
        ({"test_code": " "}, ("test_code", "required")),
        ({"test_code": "GLU"}, ("test_code", "unknown_test")),  # GLU is clinitek-1's only
        ({"value": "  "}, ("value", "required")),
        ({"value": "abc"}, ("value", "not_a_number")),
        ({"value": "5,2,1"}, ("value", "not_a_number")),
        ({"value": "19,9"}, ("value", "too_low")),
        ({"value": "200.5"}, ("value", "too_high")),
        ({"value": "4" * 200}, ("value", "too_long")),
        ({"value": "48\n5"}, ("value", "control_characters")),
        ({"unit": "%"}, ("unit", "wrong_unit")),
        ({"patient_id": ""}, ("patient_id", "required")),
        ({"patient_id": "15037212383"}, ("patient_id", "invalid_patient_id")),
        ({"patient_id": "1503721238"}, ("patient_id", "invalid_patient_id")),
        ({"patient_id": "15877210054"}, ("patient_id", "invalid_patient_id")),  # synthetic
        ({"specimen_id": "S" * 65}, ("specimen_id", "too_long")),
        ({"specimen_id": "S\t1"}, ("specimen_id", "control_characters")),
        ({"performed_at": "yesterday"}, ("performed_at", "not_a_time")),
        ({"performed_at": NOW + timedelta(minutes=1)}, ("performed_at", "in_future")),
        ({"comment": "x" * 2001}, ("comment", "too_long")),
    ],
)
def test_every_mistake_is_named_by_field_and_code(
    changes: dict[str, Any], expected: tuple[str, str]
) -> None:
    assert errors_of(entry(**changes)) == {expected}


@pytest.mark.parametrize(
    ("person", "code"),
    [("nobody", "unknown_person"), ("gone", "inactive_person"), ("ada", "no_role")],
)
def test_the_person_must_be_an_active_user_who_works_with_results(person: str, code: str) -> None:
    assert errors_of(entry(), person) == {("person", code)}


def test_several_mistakes_are_reported_together_never_raised() -> None:
    found = errors_of(
        entry(value="x", unit="%", patient_id="123", performed_at="2026-13-01"), "nobody"
    )
    assert found == {
        ("person", "unknown_person"),
        ("value", "not_a_number"),
        ("unit", "wrong_unit"),
        ("patient_id", "invalid_patient_id"),
        ("performed_at", "not_a_time"),
    }
    # an unknown instrument: the test, value and unit cannot be checked, but a missing value
    # is still said
    assert errors_of(entry(instrument_id="nope", value="")) == {
        ("instrument_id", "unknown_instrument"),
        ("value", "required"),
    }


def test_allowed_values_match_ignoring_case_and_spacing() -> None:
    glu = site_config().tests[3]
    assert glu.code == "GLU"
    assert check_value(" NEG ", glu) == ("neg", [])
    assert check_value("2 +", glu) == (
        "2 +",
        [EntryError("value", "not_allowed", (("allowed", "neg, 1+, 2+, 3+"),))],
    )
    assert check_value("2+", glu) == ("2+", [])
    assert errors_of(entry(instrument_id="clinitek-1", test_code="GLU", value="4+", unit="")) == {
        ("value", "not_allowed")
    }


def test_numbers_ranges_and_types() -> None:
    tests = {t.code + t.instrument: t for t in site_config().tests}
    crp_site, crp_clinitek = tests["CRP"], tests["CRPclinitek-1"]
    assert check_value("0", crp_site) == ("0", [])
    assert check_value("300,0", crp_site) == ("300.0", [])
    assert check_value("-1", crp_site)[1][0].code == "too_low"
    # the instrument's own mapping decides, not the site-wide one
    assert check_value("200", crp_clinitek)[1] == [
        EntryError("value", "too_high", (("high", "160"),))
    ]
    # free text takes anything on one line
    assert check_value("see comment, 5,2", tests["NOTE"]) == ("see comment, 5,2", [])
    # a structured numeric value may carry a comparator; its number is range-checked
    assert check_value("<0,6", tests["INR"]) == ("<0.6", [])
    assert check_value(">9", tests["INR"])[1][0].code == "too_high"
    assert check_value("<<1", tests["INR"])[1][0].code == "not_a_number"
    assert check_value("nan", crp_site)[1][0].code == "not_a_number"


def test_a_test_with_a_unit_takes_that_unit_and_an_empty_unit_means_it() -> None:
    checked = check_entry(entry(unit=""), "kari", CONTEXT, NOW)
    assert checked.observation is not None and checked.observation.unit == "mmol/mol"
    note = check_entry(entry(test_code="NOTE", value="haemolysed", unit="x"), "kari", CONTEXT, NOW)
    assert note.observation is not None and note.observation.unit == "x"


def test_patient_id_rules_follow_the_site() -> None:
    synthetic = entry(patient_id="15877210054")
    assert errors_of(synthetic) == {("patient_id", "invalid_patient_id")}
    allowed = dataclasses.replace(CONTEXT, allow_synthetic_ids=True)
    assert errors_of(synthetic, context=allowed) == set()
    # a number issued under the 2032 rule (first control sum remainder 1): valid only with it
    from gateway.national_id import classify

    new_rule = next(
        candidate
        for n in range(100, 999)
        if (candidate := _with_k2(f"010190{n:03d}"))
        and classify(candidate, accept_2032_rule=True).valid
        and not classify(candidate).valid
    )
    assert errors_of(entry(patient_id=new_rule)) == {("patient_id", "invalid_patient_id")}
    assert (
        errors_of(
            entry(patient_id=new_rule), context=dataclasses.replace(CONTEXT, accept_2032_ids=True)
        )
        == set()
    )
    # a site that sends by specimen alone needs one of the two
    by_specimen = dataclasses.replace(CONTEXT, require_patient_id=False)
    assert errors_of(entry(patient_id=""), context=by_specimen) == set()
    assert errors_of(entry(patient_id="", specimen_id=""), context=by_specimen) == {
        ("specimen_id", "required")
    }


def _with_k2(nine: str) -> str | None:
    """``nine`` digits with a first check digit whose remainder is 1 (2032 rule) and a valid
    second one; None when the second would be 10."""
    from gateway.national_id import K1_WEIGHTS, K2_WEIGHTS, control_digit

    weighted = sum(int(d) * w for d, w in zip(nine, K1_WEIGHTS, strict=True))
    k1 = (1 - weighted) % 11  # weighted + k1 leaves remainder 1
    if k1 == 10:
        return None
    k2 = control_digit(nine + str(k1), K2_WEIGHTS)
    return None if k2 is None else f"{nine}{k1}{k2}"


def test_performed_at_defaults_to_the_current_minute_and_local_times_are_oslo() -> None:
    now = NOW + timedelta(seconds=42, microseconds=7)
    checked = check_entry(entry(performed_at=None), "kari", CONTEXT, now)
    assert checked.observation is not None and checked.observation.performed_at == NOW
    local = check_entry(entry(performed_at="2026-12-07T09:45"), "kari", CONTEXT, NOW)
    assert local.observation is not None
    assert local.observation.performed_at == datetime(2026, 12, 7, 8, 45, tzinfo=UTC)
    # 10:01 Oslo is 09:01 UTC: a minute ahead of now
    assert errors_of(entry(performed_at="2026-12-07T10:01")) == {("performed_at", "in_future")}


def test_operator_id_is_the_persons_on_that_instrument_else_any_else_the_person() -> None:
    assert operator_id_for(PEOPLE, "kari", "afinion-1") == "KB1"
    assert operator_id_for(PEOPLE, "kari", "clinitek-1") == "KB"
    assert operator_id_for(PEOPLE, "gone", "afinion-1") == "gone"


def test_every_error_code_has_texts_in_both_languages() -> None:
    for code in ERROR_CODES:
        for lang in catalogue.LANGUAGES:
            assert catalogue.has(lang, f"manual.error.{code}"), (lang, code)
    low = EntryError("value", "too_low", (("low", "0.5"),))
    assert "0,5" in low.message("nb") and "0.5" in low.message("en")
    bad_id = check_entry(entry(patient_id="15037212383"), "kari", CONTEXT, NOW).errors[0]
    assert bad_id.message("en") == "Not a valid fødselsnummer: check digit 2 is wrong."
    assert FNR[:6] not in bad_id.message("nb")  # the number is never in the text
    texts = error_messages([bad_id, low], "en")
    assert set(texts) == {"patient_id", "value"}
    assert {e.field for e in (bad_id, low)} <= set(FIELDS)


def test_choices_list_each_instrument_with_its_own_and_the_site_wide_tests() -> None:
    found = choices(site_config())
    pairs = [(c.instrument_id, c.test_code) for c in found]
    assert pairs == [
        ("afinion-1", "CRP"),
        ("afinion-1", "HbA1c"),
        ("afinion-1", "INR"),
        ("afinion-1", "NOTE"),
        ("clinitek-1", "CRP"),
        ("clinitek-1", "GLU"),
        ("clinitek-1", "INR"),
        ("clinitek-1", "NOTE"),
    ]
    by_pair = {(c.instrument_id, c.test_code): c for c in found}
    assert by_pair["clinitek-1", "CRP"].high == 160  # the instrument's own mapping
    assert by_pair["afinion-1", "CRP"].high == 300
    glu = by_pair["clinitek-1", "GLU"]
    assert glu.allowed_values == ("neg", "1+", "2+", "3+") and glu.method == "visual"
    assert glu.instrument_name == "CLINITEK Status"  # a disabled instrument is offered too
    # every choice is an entry the checks accept
    for choice in found:
        typed = entry(
            instrument_id=choice.instrument_id,
            test_code=choice.test_code,
            value=choice.allowed_values[0] if choice.allowed_values else str(choice.low or 1),
            unit=choice.unit,
        )
        assert errors_of(typed) == set(), choice


def test_a_manual_result_is_held_for_verification_whatever_enforce_says() -> None:
    checked = check_entry(entry(), "kari", CONTEXT, NOW)
    assert checked.observation is not None
    from gateway.ingest import normalise

    result = normalise(checked.observation, CONTEXT)
    for enforce in (False, True):
        context = dataclasses.replace(CONTEXT, enforce_people=enforce)
        reasons = [h.reason for h in run_rules(result, context, RULES)]
        assert HoldReason.AWAITING_VERIFICATION in reasons
    # a measured result is not (with enforce off)
    measured = dataclasses.replace(result, method=Method.MEASURED)
    assert run_rules(measured, CONTEXT, RULES) == ()


# --- storing (a real store) ------------------------------------------------------------------

KARI = PersonSpec(
    "kari",
    (Role.OPERATOR,),
    certs={"afinion-1": CertStatus.CERTIFIED},
    operator_ids=("KB@afinion-1", "KARI"),
)
TOM = PersonSpec(
    "tom", (Role.OPERATOR,), certs={"afinion-1": CertStatus.TRAINEE}, supervisor="sofie"
)
NILS = PersonSpec("nils", (Role.OPERATOR,))  # no certification, no operator ID
ADA = PersonSpec("ada", (Role.ADMIN,))
GONE = PersonSpec("gone", (Role.OPERATOR,), active=False)


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    add_people(engine, [KARI, TOM, NILS, ADA, GONE])
    yield engine
    engine.dispose()


def stored(engine: Engine, result_id: int) -> Any:
    with engine.connect() as conn:
        row = conn.execute(select(*RESULT_COLUMNS).where(results.c.id == result_id)).one()
        return from_row(row)


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(results)).scalar_one(),
            conn.execute(select(func.count()).select_from(raw_messages)).scalar_one(),
        )


def test_an_entry_is_stored_as_a_manual_result_held_for_verification(store: Engine) -> None:
    outcome = enter(store, entry(), "kari", rule_context(enforce=False))
    assert outcome.ok and outcome.result_id is not None
    assert outcome.state == State.HELD and outcome.holds == (HoldReason.AWAITING_VERIFICATION,)
    result = stored(store, outcome.result_id)
    assert result.method is Method.MANUAL
    assert (result.performed_by, result.operator_id) == ("kari", "KB")
    assert (result.value, result.unit, result.nlk_code) == ("48.5", "mmol/mol", "NPU27300")
    assert result.comment == "printout from the analyser"
    with store.connect() as conn:
        raw = conn.execute(
            select(raw_messages).join(results, results.c.raw_message_id == raw_messages.c.id)
        ).one()
        trail = conn.execute(
            select(audit.c.actor, audit.c.action, audit.c.reason, audit.c.entity_id)
            .where(audit.c.entity == "result")
            .order_by(audit.c.id)
        ).all()
        hold = conn.execute(select(holds.c.release_role)).scalar_one()
    # the raw record is what was typed, kept before the result
    assert raw.protocol == PROTOCOL and raw.id == outcome.raw_message_id
    record = json.loads(raw.raw)
    assert record["typed"]["value"] == "48,5" and record["person"] == "kari"
    assert record["entered_at"] == NOW.isoformat()
    assert [tuple(t) for t in trail] == [
        ("kari", "result.received", "entered by hand", str(outcome.result_id)),
        (
            "system",
            "result.held",
            "awaiting_verification: Manual entry of HbA1c: a second, experienced person must "
            "check the result.",
            str(outcome.result_id),
        ),
    ]
    assert hold == Role.VERIFIER


def test_with_enforce_the_same_rules_as_instrument_results_apply(store: Engine) -> None:
    context = rule_context(enforce=True)
    certified = enter(store, entry(), "kari", context)
    assert certified.holds == (HoldReason.AWAITING_VERIFICATION,)
    trainee = enter(store, entry(specimen_id="S2"), "tom", context)
    assert trainee.holds == (HoldReason.AWAITING_COSIGN, HoldReason.AWAITING_VERIFICATION)
    uncertified = enter(store, entry(specimen_id="S3"), "nils", context)
    assert uncertified.holds == (
        HoldReason.UNCERTIFIED_OPERATOR,
        HoldReason.AWAITING_VERIFICATION,
    )
    assert trainee.result_id is not None and uncertified.result_id is not None
    assert stored(store, trainee.result_id).performed_by == "tom"
    # without an operator ID the person ID stands in, and the performer is still known
    nils = stored(store, uncertified.result_id)
    assert (nils.operator_id, nils.performed_by) == ("nils", "nils")


def test_a_duplicate_entry_is_refused_and_nothing_is_written(store: Engine) -> None:
    context = rule_context()
    first = enter(store, entry(), "kari", context)
    before = counts(store)
    again = enter(
        store, entry(comment="typed twice"), "kari", context, now=NOW + timedelta(minutes=3)
    )
    assert again.errors == (
        EntryError("entry", "duplicate", (("result_id", str(first.result_id)),)),
    )
    assert counts(store) == before
    # a form sent twice within the minute is one result (the default time is the minute)
    sent = enter(store, entry(performed_at=None), "kari", context, now=NOW + timedelta(seconds=5))
    twice = enter(store, entry(performed_at=""), "kari", context, now=NOW + timedelta(seconds=50))
    assert sent.ok and [e.code for e in twice.errors] == ["duplicate"]
    # another value is another result
    assert enter(store, entry(value="49"), "kari", context).ok


@pytest.mark.parametrize(
    ("person", "code"),
    [("nobody", "unknown_person"), ("gone", "inactive_person"), ("ada", "no_role")],
)
def test_the_store_path_checks_the_person_against_the_store(
    store: Engine, person: str, code: str
) -> None:
    outcome = enter(store, entry(), person, rule_context())
    assert [(e.field, e.code) for e in outcome.errors] == [("person", code)]
    assert counts(store) == (0, 0)


def test_an_invalid_entry_writes_nothing(store: Engine) -> None:
    outcome = enter(store, entry(patient_id=FNR_2[:-1] + "0", value="1000"), "kari", rule_context())
    assert {(e.field, e.code) for e in outcome.errors} == {
        ("patient_id", "invalid_patient_id"),
        ("value", "too_high"),
    }
    assert outcome.result_id is None and counts(store) == (0, 0)


@pytest.mark.postgres
def test_on_postgresql(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        upgrade(engine)
        add_people(engine, [KARI, TOM])
        context = rule_context(enforce=True)
        outcome = enter(engine, entry(), "tom", context)
        assert outcome.holds == (HoldReason.AWAITING_COSIGN, HoldReason.AWAITING_VERIFICATION)
        again = enter(engine, entry(), "kari", context)
        assert [e.code for e in again.errors] == ["duplicate"]
        assert outcome.result_id is not None
        result = stored(engine, outcome.result_id)
        assert result.method is Method.MANUAL and result.performed_at == entry().performed_at
        assert counts(engine) == (1, 1)
    finally:
        engine.dispose()
