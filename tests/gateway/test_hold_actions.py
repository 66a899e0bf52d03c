"""The hold actions against a real store: who may end which hold, what each signs and records,
and where the result goes (the outbox, or discarded with a deviation)."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Row, Table, select

from drivers.model import Method
from gateway import lifecycle
from gateway.catalogue import LANGUAGES, has
from gateway.config import LisConfig
from gateway.holds import (
    ActionOutcome,
    Done,
    Refusal,
    correct,
    cosign,
    override,
    reject,
    release,
    same_reading,
    signer_problem,
    verify,
)
from gateway.holds import outcome as outcomes
from gateway.lis.oru import build_oru
from gateway.lis.outbox import enqueue, unassigned_queued
from gateway.model import State
from gateway.people.roles import HoldAction, actions_for
from gateway.people.tasks import WorkItem
from gateway.rules import RuleContext
from gateway.store.audit import verify as verify_audit
from gateway.store.people import set_active
from gateway.store.tables import audit, corrections, deviations, holds, outbox, results, signatures
from gateway.store.writer import Tx, run_in_transaction
from tests.gateway.hold_site import INVALID, NOW, VALID, VALID_2, Site, make_site

LIS = LisConfig(url="tcp://127.0.0.1:2575")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    made = make_site(tmp_path)
    yield made
    made.engine.dispose()


def rows(site: Site, table: Table, result_id: int) -> list[Row[Any]]:
    with site.engine.connect() as conn:
        return list(conn.execute(select(table).where(table.c.result_id == result_id)).all())


def only_signature(site: Site, result_id: int) -> tuple[str, str, dict[str, object]]:
    (row,) = rows(site, signatures, result_id)
    return row.person, row.meaning, json.loads(row.detail)


def refused_as(outcome: ActionOutcome, code: Refusal) -> bool:
    return outcome.refused and outcome.code == code.value and outcome.signature_id is None


def audit_ok(site: Site) -> bool:
    with site.engine.connect() as conn:
        return verify_audit(conn).ok


def pack_for_lis(site: Site) -> str:
    """What the forwarder does with the queued results: one ORU in the outbox; its text."""

    def pack(tx: Tx) -> str:
        queued = unassigned_queued(tx, 10)
        text = build_oru(queued, control_id="CTRL1", now=tx.now, lis=LIS)
        enqueue(tx, [("CTRL1", text, queued)])
        return str(tx.conn.execute(select(outbox.c.message)).scalar_one())

    return run_in_transaction(site.engine, pack, NOW)


def releasing(result_id: int, person: str, tx: Tx, context: RuleContext) -> ActionOutcome:
    return release(tx, result_id, person, note="looks ok", context=context)


# --- release -----------------------------------------------------------------------------------


def test_the_issues_bug_an_invalid_patient_id_is_never_released(site: Site) -> None:
    result_id = site.ingest(patient=INVALID)
    assert site.open_reasons(result_id) == ["invalid_patient_id"]
    for person in ("kari", "sara", "vera"):  # whoever asks, with a note
        outcome = site.act(functools.partial(releasing, result_id, person))
        assert refused_as(outcome, Refusal.NEEDS_CORRECTION)
    assert "never released unchanged" in outcome.message("en")
    assert "frigis aldri uendret" in outcome.message("nb")
    assert site.state(result_id) == "held" and rows(site, signatures, result_id) == []


def test_release_by_a_permitted_role_with_a_note_queues_the_result(site: Site) -> None:
    result_id = site.ingest(patient="")  # missing patient ID: supervisor or quality manager
    assert site.open_reasons(result_id) == ["missing_patient_id"]
    outcome = site.act(
        lambda tx, c: release(tx, result_id, "kari", note="research sample", context=c)
    )
    assert outcome.done and outcome.code == Done.QUEUED and outcome.state == "queued"
    assert outcome.ended == ("missing_patient_id",) and outcome.remaining == ()
    assert site.state(result_id) == "queued"
    (hold,) = rows(site, holds, result_id)
    assert (hold.released_by, hold.release_note, hold.released_at) == (
        "kari",
        "research sample",
        NOW,
    )
    person, meaning, detail = only_signature(site, result_id)
    assert (person, meaning, detail["note"]) == ("kari", "release", "research sample")
    assert detail["holds"] == ["missing_patient_id"]
    with site.engine.connect() as conn:
        actions = list(
            conn.execute(
                select(audit.c.actor, audit.c.action).where(audit.c.entity_id == str(result_id))
            ).all()
        )
    assert ("kari", "result.release") in actions and ("kari", "result.queued") in actions
    assert audit_ok(site)


def test_release_refusals(site: Site) -> None:
    result_id = site.ingest(patient="")

    def attempt(person: str, note: str = "a note") -> ActionOutcome:
        return site.act(lambda tx, c: release(tx, result_id, person, note=note, context=c))

    wrong = attempt("vera")  # a verifier may correct the ID, not release it without one
    assert refused_as(wrong, Refusal.WRONG_ROLE)
    assert dict(wrong.params)["roles"] == "supervisor;quality_manager"
    assert "Supervisor, Quality manager" in wrong.message("en")
    assert refused_as(attempt("anne"), Refusal.WRONG_ROLE)  # admin acts on no result
    assert refused_as(attempt("nobody"), Refusal.UNKNOWN_PERSON)
    missing = attempt("kari", note="   ")
    assert refused_as(missing, Refusal.NOTE_REQUIRED) and missing.bad_input
    run_in_transaction(site.engine, lambda tx: set_active(tx, "kari", False, actor="test"), NOW)
    assert refused_as(attempt("kari"), Refusal.INACTIVE_PERSON)
    assert refused_as(
        site.act(lambda tx, c: release(tx, 999, "kari", note="x", context=c)),
        Refusal.NO_SUCH_RESULT,
    )
    assert site.state(result_id) == "held" and rows(site, signatures, result_id) == []


def test_release_does_not_end_the_people_holds(site: Site) -> None:
    uncertified = site.ingest(operator="ULF")
    strip = site.ingest("GLU", "neg", operator="OLA", specimen="U1")
    for result_id, their_action in ((uncertified, "override"), (strip, "reject;verify")):
        outcome = site.act(functools.partial(releasing, result_id, "kari"))
        assert refused_as(outcome, Refusal.NO_OPEN_HOLD)
        assert dict(outcome.params)["actions"] == their_action
        assert site.state(result_id) == "held"


def test_an_action_on_a_result_that_is_not_held(site: Site) -> None:
    result_id = site.ingest()  # certified, valid ID: straight to the queue
    assert site.state(result_id) == "queued"
    outcome = site.act(lambda tx, c: release(tx, result_id, "kari", note="x", context=c))
    assert refused_as(outcome, Refusal.NOT_HELD)
    assert outcome.message("en") == (
        f"Result {result_id} is not held (it is Queued): there is nothing to release."
    )


# --- correct -----------------------------------------------------------------------------------


def test_a_correction_keeps_the_original_and_sends_only_the_corrected_id(site: Site) -> None:
    result_id = site.ingest(patient=INVALID)

    def fix(value: str, person: str = "vera") -> ActionOutcome:
        return site.act(
            lambda tx, c: correct(
                tx,
                result_id,
                person,
                field="patient_id",
                new_value=value,
                reason="label",
                context=c,
            )
        )

    invalid = fix(INVALID[:-1] + "9")
    assert refused_as(invalid, Refusal.INVALID_NEW_ID)
    assert invalid.message("en") == "The new patient ID is not valid: check digit 2 is wrong."
    assert refused_as(fix(INVALID), Refusal.UNCHANGED)
    assert refused_as(fix(VALID, person="ola"), Refusal.WRONG_ROLE)  # an operator may not
    assert rows(site, corrections, result_id) == [] and site.state(result_id) == "held"

    done = fix(VALID)
    assert done.done and done.code == Done.QUEUED and site.state(result_id) == "queued"
    (kept,) = rows(site, corrections, result_id)
    assert (kept.field, kept.old_value, kept.new_value, kept.person, kept.reason, kept.at) == (
        "patient_id",
        INVALID,
        VALID,
        "vera",
        "label",
        NOW,
    )
    person, meaning, detail = only_signature(site, result_id)
    assert (person, meaning) == ("vera", "correct")
    assert (detail["old"], detail["new"]) == ("010100*****", "010100*****")  # masked
    with site.engine.connect() as conn:
        stored = conn.execute(select(results.c.patient_id).where(results.c.id == result_id))
        assert stored.scalar_one() == VALID
        logged = " ".join(
            f"{r.reason} {r.before} {r.after}" for r in conn.execute(select(audit)).all()
        )
    assert INVALID not in logged and VALID not in logged  # the audit log keeps them masked
    message = pack_for_lis(site)
    pid = next(seg for seg in message.split("\r") if seg.startswith("PID|"))
    assert pid.split("|")[3].startswith(VALID + "^")
    assert INVALID not in message
    assert audit_ok(site)


def test_a_specimen_correction_reruns_the_rules_and_keeps_the_patient_hold(site: Site) -> None:
    result_id = site.ingest(patient="", specimen="S-WRONG")
    outcome = site.act(
        lambda tx, c: correct(
            tx,
            result_id,
            "vera",
            field="specimen_id",
            new_value="S-42",
            reason="re-read",
            context=c,
        )
    )
    assert outcome.done and outcome.code == Done.STILL_HELD
    assert outcome.remaining == ("missing_patient_id",) and outcome.ended == ()
    assert site.open_reasons(result_id) == ["missing_patient_id"]
    (kept,) = rows(site, corrections, result_id)
    assert (kept.old_value, kept.new_value) == ("S-WRONG", "S-42")
    now_the_id = site.act(
        lambda tx, c: correct(
            tx, result_id, "vera", field="patient_id", new_value=VALID_2, reason="LIS", context=c
        )
    )
    assert now_the_id.code == Done.QUEUED
    assert [r.field for r in rows(site, corrections, result_id)] == ["specimen_id", "patient_id"]


def test_a_correction_leaves_the_other_holds_in_place(site: Site) -> None:
    strip = site.ingest("GLU", "1+", operator="OLA", patient=INVALID, specimen="U7")
    assert site.open_reasons(strip) == ["invalid_patient_id", "awaiting_verification"]
    fixed = site.act(
        lambda tx, c: correct(
            tx, strip, "vera", field="patient_id", new_value=VALID, reason="label", context=c
        )
    )
    assert fixed.code == Done.STILL_HELD and fixed.remaining == ("awaiting_verification",)
    assert "Awaiting second-person verification" in fixed.message("en")
    verified = site.act(lambda tx, c: verify(tx, strip, "vera", value_read="1 +", context=c))
    assert verified.code == Done.QUEUED and site.state(strip) == "queued"


def test_a_correction_refusals(site: Site) -> None:
    result_id = site.ingest(patient=INVALID)

    def fix(field: str, value: str, reason: str = "why") -> ActionOutcome:
        return site.act(
            lambda tx, c: correct(
                tx, result_id, "vera", field=field, new_value=value, reason=reason, context=c
            )
        )

    assert fix("value", "5").code == Refusal.BAD_FIELD and fix("value", "5").bad_input
    assert fix("patient_id", "  ").code == Refusal.EMPTY_VALUE
    assert fix("specimen_id", "S" * 65).code == Refusal.TOO_LONG
    assert fix("patient_id", VALID, reason=" ").code == Refusal.REASON_REQUIRED
    sent = site.ingest(specimen="S9")
    run_in_transaction(
        site.engine,
        lambda tx: lifecycle.move(tx, [sent], State.QUEUED, State.SENT, actor="test"),
        NOW,
    )
    late = site.act(
        lambda tx, c: correct(
            tx, sent, "vera", field="patient_id", new_value=VALID_2, reason="x", context=c
        )
    )
    assert refused_as(late, Refusal.ALREADY_SENT)
    assert "corrected result" in late.message("en")


# --- override ----------------------------------------------------------------------------------


def test_override_of_an_uncertified_operator(site: Site) -> None:
    result_id = site.ingest(operator="ULF")
    assert site.open_reasons(result_id) == ["uncertified_operator"]

    def attempt(person: str, reason: str = "ULF was certified on paper") -> ActionOutcome:
        return site.act(lambda tx, c: override(tx, result_id, person, reason=reason, context=c))

    assert refused_as(attempt("ola"), Refusal.WRONG_ROLE)
    assert refused_as(attempt("vera"), Refusal.WRONG_ROLE)
    assert refused_as(attempt("sara", reason=""), Refusal.REASON_REQUIRED)
    done = attempt("sara")
    assert done.code == Done.QUEUED and site.state(result_id) == "queued"
    person, meaning, detail = only_signature(site, result_id)
    assert (person, meaning, detail["operator"], detail["reason"]) == (
        "sara",
        "override",
        "ULF",
        "ULF was certified on paper",
    )


def test_the_performer_cannot_override_their_own_result(site: Site) -> None:
    result_id = site.ingest(operator="SIV")  # siv is not certified for the Afinion
    assert site.open_reasons(result_id) == ["uncertified_operator"]
    mine = site.act(lambda tx, c: override(tx, result_id, "siv", reason="mine", context=c))
    assert refused_as(mine, Refusal.SAME_PERSON)
    assert mine.message("en") == "siv performed this result: a second person must override it."
    assert site.act(lambda tx, c: override(tx, result_id, "kari", reason="checked", context=c)).done


# --- verify and reject ---------------------------------------------------------------------------


def test_a_second_person_verifies_a_visual_reading(site: Site) -> None:
    strip = site.ingest("GLU", "2+", operator="VERA", specimen="U1")
    assert site.open_reasons(strip) == ["awaiting_verification"]

    def attempt(person: str, read: str | None = None) -> ActionOutcome:
        return site.act(lambda tx, c: verify(tx, strip, person, value_read=read, context=c))

    assert refused_as(attempt("vera"), Refusal.SAME_PERSON)  # her own reading
    assert refused_as(attempt("vilde"), Refusal.NOT_CERTIFIED)  # certified for nothing
    assert refused_as(attempt("sara"), Refusal.WRONG_ROLE)  # a supervisor is no verifier
    assert refused_as(attempt("kari"), Refusal.WRONG_ROLE)
    done = attempt("viktor", read=" 2 + ")
    assert done.code == Done.QUEUED and site.state(strip) == "queued"
    person, meaning, detail = only_signature(site, strip)
    assert (person, meaning) == ("viktor", "verify")
    assert detail["value"] == "2+" and detail["value_read"] == "2 +" and detail["agreed"] is True
    assert detail["interval_s"] == 600  # read ten minutes before the second look
    assert detail["performer"] == "vera"


def test_a_verifiers_certification_expires_at_midnight_oslo(site: Site) -> None:
    # viktor's recertification was due 2026-12-08: valid through that day in Oslo, expired
    # from 2026-12-09 00:00 Oslo = 2026-12-08 23:00 UTC
    before = site.ingest("GLU", "neg", operator="OLA", specimen="U2")
    after = site.ingest("GLU", "1+", operator="OLA", specimen="U3")
    late_evening = datetime(2026, 12, 8, 22, 59, 59, tzinfo=UTC)
    midnight = datetime(2026, 12, 8, 23, 0, tzinfo=UTC)
    ok = site.act(lambda tx, c: verify(tx, before, "viktor", context=c), now=late_evening)
    assert ok.code == Done.QUEUED
    expired = site.act(lambda tx, c: verify(tx, after, "viktor", context=c), now=midnight)
    assert refused_as(expired, Refusal.NOT_CERTIFIED)
    assert dict(expired.params)["status"] == "expired"
    assert "(expired)" in expired.message("en") and "(utløpt)" in expired.message("nb")


def test_a_disagreement_discards_the_result_with_a_deviation(site: Site) -> None:
    strip = site.ingest("GLU", "2+", operator="OLA", specimen="U4")
    outcome = site.act(
        lambda tx, c: verify(tx, strip, "vera", value_read="1+", comment="pale pad", context=c)
    )
    assert outcome.done and outcome.code == Done.DISCARDED and outcome.notes == ("disagreed",)
    assert site.state(strip) == "discarded" and site.open_reasons(strip) == []
    (deviation,) = rows(site, deviations, strip)
    assert deviation.responsible_function == "Kvalitetsansvarlig"
    assert deviation.kind == "verification_disagreement" and deviation.id == outcome.deviation_id
    assert "'2+'" in deviation.detail and "'1+'" in deviation.detail
    _, meaning, detail = only_signature(site, strip)
    assert (meaning, detail["agreed"], detail["value_read"], detail["discarded"]) == (
        "verify",
        False,
        "1+",
        True,
    )
    assert "Kvalitetsansvarlig" in outcome.message("en")
    # discarded is an end state: nothing brings it to the LIS
    again = site.act(lambda tx, c: verify(tx, strip, "viktor", context=c))
    assert refused_as(again, Refusal.NOT_HELD)
    assert audit_ok(site)


def test_a_rejection_needs_a_comment_and_records_a_deviation(site: Site) -> None:
    strip = site.ingest("GLU", "3+", operator="OLA", specimen="U5")
    no_comment = site.act(lambda tx, c: reject(tx, strip, "vera", comment=" ", context=c))
    assert refused_as(no_comment, Refusal.COMMENT_REQUIRED) and no_comment.bad_input
    assert refused_as(
        site.act(lambda tx, c: reject(tx, strip, "kari", comment="no", context=c)),
        Refusal.WRONG_ROLE,
    )
    done = site.act(lambda tx, c: reject(tx, strip, "vera", comment="strip expired", context=c))
    assert done.code == Done.DISCARDED and site.state(strip) == "discarded"
    (deviation,) = rows(site, deviations, strip)
    assert (deviation.kind, deviation.responsible_function) == (
        "verification_rejected",
        "Kvalitetsansvarlig",
    )
    assert "strip expired" in deviation.detail
    (hold,) = rows(site, holds, strip)
    assert (hold.released_by, hold.release_note) == ("vera", "strip expired")
    assert only_signature(site, strip)[1] == "reject"


def test_readings_compare_as_text_or_numbers() -> None:
    assert same_reading("2+", " 2 + ") and same_reading("NEG", "neg")
    assert same_reading("5", "5,0") and same_reading("5.0", "5")
    assert not same_reading("1+", "2+") and not same_reading("5", "5.1")
    assert same_reading("nan", "NaN ")  # the same text, though no number
    assert not same_reading("Infinity", "inf")


# --- co-sign -----------------------------------------------------------------------------------


def test_a_supervisor_cosigns_a_trainees_result(site: Site) -> None:
    worked = NOW - timedelta(minutes=10)
    present = site.ingest(operator="TINA", specimen="T1")
    absent = site.ingest(operator="TINA", specimen="T2")
    assert site.open_reasons(present) == ["awaiting_cosign"]
    assert refused_as(
        site.act(lambda tx, c: cosign(tx, present, "vera", context=c)), Refusal.WRONG_ROLE
    )
    assert refused_as(  # a supervisor, but not certified for the Afinion
        site.act(lambda tx, c: cosign(tx, present, "siv", context=c)), Refusal.NOT_CERTIFIED
    )
    # sara was signed in from before the trainee worked until after
    site.session("sara", worked - timedelta(minutes=30), worked + timedelta(minutes=5))
    done = site.act(lambda tx, c: cosign(tx, present, "sara", comment="watched", context=c))
    assert done.code == Done.QUEUED and done.notes == ("session",)
    _, meaning, detail = only_signature(site, present)
    assert (meaning, detail["supervisor_session"], detail["trainee"]) == ("cosign", True, "tina")
    assert detail["trainee_worked_at"] == worked.isoformat()
    # sven is certified for the model and may co-sign, but was not signed in: recorded, shown
    other = site.act(lambda tx, c: cosign(tx, absent, "sven", context=c))
    assert other.code == Done.QUEUED
    assert other.notes == ("no_session", "not_named_supervisor")
    assert "no active session" in other.message("en") and "names sara" in other.message("en")
    assert only_signature(site, absent)[2]["supervisor_session"] is False


def test_a_trainee_who_supervises_elsewhere_cannot_cosign_their_own_result(site: Site) -> None:
    result_id = site.ingest(operator="STIG")
    assert site.open_reasons(result_id) == ["awaiting_cosign"]
    mine = site.act(lambda tx, c: cosign(tx, result_id, "stig", context=c))
    assert refused_as(mine, Refusal.SAME_PERSON)


def test_a_session_that_ended_or_went_idle_before_the_work_is_no_presence(site: Site) -> None:
    worked = NOW - timedelta(minutes=10)
    ended = site.ingest(operator="TINA", specimen="T3")
    idle = site.ingest(operator="TINA", specimen="T4")
    start = worked - timedelta(hours=1)
    site.session("sara", start, worked - timedelta(minutes=1), ended=worked - timedelta(minutes=1))
    a = site.act(lambda tx, c: cosign(tx, ended, "sara", context=c))
    assert a.notes == ("no_session",)
    site.session("sven", start, worked - timedelta(minutes=16))  # idle longer than 15 minutes
    b = site.act(lambda tx, c: cosign(tx, idle, "sven", context=c))
    assert b.notes[0] == "no_session"


# --- the outcome texts ---------------------------------------------------------------------------


def test_every_outcome_code_has_its_text_in_both_languages() -> None:
    keys = {f"action.refused.{code.value}" for code in outcomes.Refusal}
    keys |= {f"action.done.{code.value}" for code in outcomes.Done}
    keys |= {f"action.name.{action.value}" for action in HoldAction}
    keys |= {
        f"action.note.{note}"
        for note in (
            outcomes.NOTE_SESSION,
            outcomes.NOTE_NO_SESSION,
            outcomes.NOTE_DISAGREED,
            outcomes.NOTE_NOT_NAMED_SUPERVISOR,
        )
    }
    keys |= {f"action.status.{s}" for s in ("certified", "trainee", "expired", "suspended", "none")}
    keys |= {f"action.signin.{s}" for s in ("wrong", "locked", "disabled", "no_password")}
    for lang in LANGUAGES:
        assert {k for k in keys if not has(lang, k)} == set(), lang


def test_a_page_can_ask_who_may_act_without_acting(site: Site) -> None:
    """``signer_problem`` is the check the actions make, as a pure function over facts."""
    (rule, _) = actions_for("awaiting_verification")
    work = WorkItem("clinitek-1", "astm_clinitek_status", "GLU")

    def problem(person: str, now: datetime = NOW) -> str | None:
        context = site.act_context(now)
        found = signer_problem(rule, person, "vera", work, context, now)
        return found[0].value if found else None

    assert problem("viktor") is None
    assert problem("vera") == "same_person"
    assert problem("sara") == "wrong_role"
    assert problem("vilde") == "not_certified"
    assert problem("viktor", datetime(2026, 12, 8, 23, 0, tzinfo=UTC)) == "not_certified"


def test_without_the_people_rules_a_verifier_needs_no_certification(site: Site) -> None:
    # a site that has not imported its competence records ([people] enforce = false) still
    # has manual entries checked by a second person with the verifier role
    import dataclasses

    base = site.base
    site.base = dataclasses.replace(base, enforce_people=False)
    try:
        entry = site.ingest("GLU", "2+", operator="VERA", specimen="U9", method=Method.MANUAL)
        assert site.open_reasons(entry) == ["awaiting_verification"]

        def attempt(person: str) -> ActionOutcome:
            return site.act(lambda tx, c: verify(tx, entry, person, context=c))

        assert refused_as(attempt("vera"), Refusal.SAME_PERSON)
        assert refused_as(attempt("sara"), Refusal.WRONG_ROLE)
        assert attempt("vilde").code == Done.QUEUED  # certified for nothing, but a verifier
    finally:
        site.base = base
