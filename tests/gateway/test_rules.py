"""Tests for the pure rules: patient ID, unmapped test, and how they are run."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from drivers.model import Method
from gateway.config import TestConfig as MappedTest  # "Test..." would be collected
from gateway.config import parse_config
from gateway.model import Hold, HoldReason, Result
from gateway.rules import (
    RULES,
    RuleContext,
    context_from_config,
    patient_id_rule,
    run_rules,
    unmapped_test_rule,
)
from gateway.texts import action_texts, describe_hold, hold_todo, hold_why

ACTION_TEXT = {lang: action_texts(lang) for lang in ("nb", "en")}


def why(hold: Hold, lang: str = "en") -> str:
    """The hold's sentence as the screens and the CLI render it from its reason and params."""
    return hold_why(lang, {"reason": hold.reason, "params": dict(hold.params)})


def todo(hold: Hold, lang: str = "en") -> str:
    return hold_todo(lang, {"reason": hold.reason})


HBA1C = MappedTest(code="HbA1c", nlk="NPU27300", unit="mmol/mol")
CRP_AFINION = MappedTest(code="CRP", nlk="NPU19748", unit="mg/L", instrument="afinion-1")
CRP_ANY = MappedTest(code="CRP", nlk="NPU01423", unit="mg/L")
CONTEXT = RuleContext(
    tests={("", "HbA1c"): HBA1C, ("afinion-1", "CRP"): CRP_AFINION, ("", "CRP"): CRP_ANY}
)


def result(patient_id: str = "31129956715", code: str = "HbA1c", **kw: str) -> Result:
    """A mapped patient result with sensible defaults."""
    fields = {
        "instrument_id": "afinion-1",
        "test_code": code,
        "value": "48",
        "value_type": "NM",
        "unit": "mmol/mol",
        "reference_range": "",
        "abnormal_flags": (),
        "method": Method.MEASURED,
        "performed_at": None,
        "operator_id": "op1",
        "specimen_id": "S1",
        "patient_id": patient_id,
    }
    return Result(**{**fields, **kw})  # type: ignore[arg-type]


def reasons(holds: Sequence[Hold]) -> list[str]:
    return [hold.reason for hold in holds]


def test_valid_patient_id_passes() -> None:
    assert patient_id_rule(result(), CONTEXT) == ()
    assert patient_id_rule(result("41019012393"), CONTEXT) == ()  # D-number


def test_missing_patient_id_is_held_when_required() -> None:
    (hold,) = patient_id_rule(result(" "), CONTEXT)
    assert hold.reason == HoldReason.MISSING_PATIENT_ID
    assert hold.release_role == "verifier" and todo(hold)
    assert why(hold) == "The result from afinion-1 has no patient ID."
    assert why(hold, "nb") == "Svaret fra afinion-1 mangler pasient-ID."


def test_missing_patient_id_passes_when_not_required() -> None:
    context = dataclasses.replace(CONTEXT, require_patient_id=False)
    assert patient_id_rule(result(""), context) == ()


def test_invalid_patient_id_names_the_problem_but_not_the_number() -> None:
    (hold,) = patient_id_rule(result("31129956716"), CONTEXT)
    assert hold.reason == HoldReason.INVALID_PATIENT_ID
    assert "311299*****" in why(hold) and "check digit 2 is wrong" in why(hold)
    assert "56716" not in why(hold) and "56716" not in repr(hold.params)
    assert todo(hold) == "Check the sample label and correct the patient ID, then release"
    assert why(hold, "nb") == (
        "Pasient-ID 311299***** er ikke et gyldig fødselsnummer: kontrollsiffer 2 er feil."
    )
    assert describe_hold(hold) == f"invalid_patient_id: {why(hold)}"  # the audit log's line
    assert hold.release_role == "verifier"


def test_invalid_patient_id_is_held_even_when_not_required() -> None:
    context = dataclasses.replace(CONTEXT, require_patient_id=False)
    assert reasons(patient_id_rule(result("12345"), context)) == ["invalid_patient_id"]


def test_synthetic_patient_id_depends_on_context() -> None:
    synthetic = result("01819012365")
    assert reasons(patient_id_rule(synthetic, CONTEXT)) == ["invalid_patient_id"]
    allowed = dataclasses.replace(CONTEXT, allow_synthetic_ids=True)
    assert patient_id_rule(synthetic, allowed) == ()


def test_mapped_test_passes() -> None:
    assert unmapped_test_rule(result(code="HbA1c"), CONTEXT) == ()


def test_unmapped_test_is_held_for_the_quality_manager() -> None:
    (hold,) = unmapped_test_rule(result(code="GLU"), CONTEXT)
    assert hold.reason == HoldReason.UNMAPPED_TEST
    assert "'afinion-1'" in why(hold) and "'GLU'" in why(hold)
    assert hold.release_role == "quality_manager"
    assert todo(hold).startswith("Add the test to the setup (the test mapping) with its NLK code")
    # the bokmål screen names no config syntax
    assert "[[tests]]" not in why(hold, "nb") and "[[tests]]" not in todo(hold, "nb")
    assert "testkoblingen" in todo(hold, "nb") and "«GLU»" in why(hold, "nb")


def test_unmapped_test_passes_when_forwarding_is_allowed() -> None:
    context = dataclasses.replace(CONTEXT, forward_unmapped=True)
    assert unmapped_test_rule(result(code="GLU"), context) == ()


def test_find_test_prefers_the_instrument_specific_mapping() -> None:
    assert CONTEXT.find_test("afinion-1", "CRP") is CRP_AFINION
    assert CONTEXT.find_test("cobas-1", "CRP") is CRP_ANY
    assert CONTEXT.find_test("cobas-1", "HbA1c") is HBA1C
    assert CONTEXT.find_test("cobas-1", "GLU") is None


def test_run_rules_collects_holds_in_rule_order() -> None:
    assert run_rules(result(), CONTEXT) == ()
    holds = run_rules(result("", code="GLU"), CONTEXT)
    assert reasons(holds) == ["missing_patient_id", "unmapped_test"]
    assert run_rules(result("", code="GLU"), CONTEXT, rules=(unmapped_test_rule,)) == holds[1:]
    assert RULES[:2] == (patient_id_rule, unmapped_test_rule)


def test_context_from_config() -> None:
    config = parse_config(
        {
            "site": {"name": "test"},
            "rules": {"require_patient_id": False, "forward_unmapped": True},
            "tests": [{"code": "HbA1c", "nlk": "NPU27300"}],
        }
    )
    context = context_from_config(config)
    assert not context.require_patient_id and context.forward_unmapped
    found = context.find_test("any", "HbA1c")
    assert found is not None and found.nlk == "NPU27300"


def test_every_hold_reason_has_action_text_in_both_languages() -> None:
    assert set(ACTION_TEXT) == {"nb", "en"}
    for texts in ACTION_TEXT.values():
        assert set(texts) == {reason.value for reason in HoldReason}
        assert all(text.strip() for text in texts.values())
    assert ACTION_TEXT["en"]["invalid_patient_id"] == (
        "Check the sample label and correct the patient ID, then release"
    )
    assert ACTION_TEXT["nb"]["unmapped_test"] != ACTION_TEXT["en"]["unmapped_test"]


def test_hold_explanations_come_in_bokmal_too() -> None:
    def nb_problem(number: str) -> str:
        (hold,) = patient_id_rule(result(number), CONTEXT)
        return why(hold, "nb").partition(": ")[2]

    assert nb_problem("31129956716") == "kontrollsiffer 2 er feil."
    assert nb_problem("311299567") == "må ha 11 siffer, ikke 9."
    assert nb_problem("29020012380") == "dag 29 finnes ikke i måned 02 det året."  # 1900
