"""Importing competence records into a real store (SQLite and PostgreSQL): the plan, one
transaction, nothing deleted, and a second import of the same file that changes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, func, select

from gateway.people.competence import CompetenceFile, format_competence, parse_competence
from gateway.people.operators import OperatorId
from gateway.store.competence import (
    Change,
    ImportRefused,
    apply_import,
    export_records,
    person_ids,
    plan_import,
)
from gateway.store.people import list_people, load_people, set_operator_ids, upsert_person
from gateway.store.tables import audit, facts_version
from gateway.store.writer import run_in_transaction

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
HEADER = "person,name,operator_ids,roles,task,status,certified_on,recert_due,supervisor,evidence"
FILE = (
    f"{HEADER}\n"
    "bente,Bente Hansen,BH,operator;verifier;supervisor,astm_afinion2,certified,2025-03-01,"
    "2027-03-01,,kurs\n"
    "bente,Bente Hansen,BH,operator;verifier;supervisor,clinitek-1,certified,2025-03-01,"
    "2027-03-01,,\n"
    "tone,Tone Strand,TS;TS@afinion-1,operator,clinitek-1,trainee,,,bente,\n"
    "eva,Eva Dahl,,admin,,,,,,\n"
)


def parse(text: str, engine: Engine) -> CompetenceFile:
    with engine.connect() as conn:
        known = person_ids(conn)
    parsed = parse_competence(text, known_people=known)
    assert parsed.ok, parsed.problems
    return parsed


def audit_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(audit)).scalar_one())


def version(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(facts_version.c.version)).scalar_one())


def do_import(engine: Engine, text: str, actor: str = "kari.admin"):  # type: ignore[no-untyped-def]
    parsed = parse(text, engine)
    return run_in_transaction(engine, lambda tx: apply_import(tx, parsed, actor=actor), NOW)


def test_first_import_creates_everything_and_the_second_changes_nothing(engine: Engine) -> None:
    parsed = parse(FILE, engine)
    with engine.connect() as conn:
        plan = plan_import(conn, parsed)
    assert plan.counts() == {
        "people": {"created": 3, "changed": 0, "unchanged": 0, "not_in_file": 0},
        "certifications": {"created": 3, "changed": 0, "unchanged": 0, "not_in_file": 0},
    }
    assert audit_rows(engine) == 0  # planning writes nothing

    before = version(engine)
    done = do_import(engine, FILE)
    assert done.changes == 6
    with engine.connect() as conn:
        facts = load_people(conn)
        actions = conn.execute(select(audit.c.action, audit.c.actor)).all()
    assert facts.person_for("afinion-1", "TS") == "tone"
    assert facts.person_for("sysmex-1", "BH") == "bente"
    assert {c.task.target for c in facts.certifications["bente"]} == {"astm_afinion2", "clinitek-1"}
    assert facts.people["eva"].name == "Eva Dahl"
    assert {actor for _, actor in actions} == {"kari.admin"}
    assert sorted(a for a, _ in actions).count("certification.set") == 3
    assert "competence.imported" in {a for a, _ in actions}
    assert version(engine) > before

    rows, now = audit_rows(engine), version(engine)
    again = do_import(engine, FILE)
    assert again.changes == 0
    assert {p.change for p in again.people} == {Change.UNCHANGED}
    assert {c.change for c in again.certifications} == {Change.UNCHANGED}
    assert audit_rows(engine) == rows  # idempotent: no audit row ...
    assert version(engine) == now  # ... and the rules' facts are not reloaded


def test_the_plan_names_each_changed_field(engine: Engine) -> None:
    do_import(engine, FILE)
    changed = (
        FILE.replace("Tone Strand", "Tone Strand Berg")
        .replace("clinitek-1,trainee,,,bente,", "clinitek-1,certified,2026-12-01,2027-12-01,bente,")
        .replace("TS;TS@afinion-1", "TS")
    )
    parsed = parse(changed, engine)
    with engine.connect() as conn:
        plan = plan_import(conn, parsed)
    tone = next(p for p in plan.people if p.person == "tone")
    assert tone.change is Change.CHANGED
    assert [(f.field, f.before, f.after) for f in tone.fields] == [
        ("name", "Tone Strand", "Tone Strand Berg"),
        ("operator_ids", "TS;TS@afinion-1", "TS"),
    ]
    cert = next(c for c in plan.certifications if c.person == "tone")
    assert [(f.field, f.before, f.after) for f in cert.fields] == [
        ("status", "trainee", "certified"),
        ("certified_on", "", "2026-12-01"),
        ("recert_due", "", "2027-12-01"),
    ]
    assert plan.changes == 2
    rows = audit_rows(engine)
    run_in_transaction(engine, lambda tx: apply_import(tx, parsed, actor="kari.admin"), NOW)
    # person.updated, person.operator_ids, certification.set, competence.imported
    assert audit_rows(engine) == rows + 4
    with engine.connect() as conn:
        facts = load_people(conn)
    assert facts.person_for("afinion-1", "TS") == "tone"  # through the any-instrument ID now
    assert facts.operators.get(("afinion-1", "TS")) is None
    (cert_now,) = facts.certifications["tone"]
    assert cert_now.certified_on == date(2026, 12, 1)


def test_people_and_certifications_not_in_the_file_are_reported_and_kept(engine: Engine) -> None:
    do_import(engine, FILE)
    shorter = "\n".join(
        line
        for line in FILE.splitlines()
        if not line.startswith(
            ("eva,", "bente,Bente Hansen,BH,operator;verifier;supervisor,clinitek-1")
        )
    )
    parsed = parse(shorter, engine)
    rows = audit_rows(engine)
    plan = run_in_transaction(engine, lambda tx: apply_import(tx, parsed, actor="kari.admin"), NOW)
    assert plan.people_not_in_file == ("eva",)
    assert plan.certifications_not_in_file == (("bente", "clinitek-1"),)
    assert plan.changes == 0 and audit_rows(engine) == rows
    with engine.connect() as conn:
        people = {p["person"]: p for p in list_people(conn)}
    assert set(people) == {"bente", "tone", "eva"}
    assert {c["task"] for c in people["bente"]["certifications"]} == {  # type: ignore[attr-defined]
        "astm_afinion2",
        "clinitek-1",
    }


def test_an_operator_id_held_by_someone_outside_the_file_refuses_the_whole_import(
    engine: Engine,
) -> None:
    def kari(tx):  # type: ignore[no-untyped-def]
        upsert_person(tx, "kari", name="Kari Nordmann", roles=(), actor="setup")
        set_operator_ids(tx, "kari", [OperatorId("TS", "afinion-1")], actor="setup")

    run_in_transaction(engine, kari, NOW)
    parsed = parse(FILE, engine)
    rows = audit_rows(engine)
    with pytest.raises(ImportRefused) as refused:
        run_in_transaction(engine, lambda tx: apply_import(tx, parsed, actor="x"), NOW)
    assert [
        (p.line, p.column, p.code, p.value, dict(p.params)) for p in refused.value.problems
    ] == [(4, "operator_ids", "operator_id_held", "TS@afinion-1", {"other": "kari"})]
    assert audit_rows(engine) == rows
    with engine.connect() as conn:
        assert person_ids(conn) == {"kari"}


def test_two_people_in_the_file_may_swap_operator_ids(engine: Engine) -> None:
    do_import(engine, FILE)
    swapped = (
        FILE.replace(",BH,", ",@@,")
        .replace("TS;TS@afinion-1", "BH")
        .replace(",@@,", ",TS;TS@afinion-1,")
    )
    do_import(engine, swapped)
    with engine.connect() as conn:
        facts = load_people(conn)
    assert facts.person_for("afinion-1", "TS") == "bente"
    assert facts.person_for("sysmex-1", "BH") == "tone"
    assert do_import(engine, swapped).changes == 0


def test_export_then_import_is_a_no_op(engine: Engine) -> None:
    do_import(engine, FILE)
    with engine.connect() as conn:
        people, certs = export_records(conn)
    exported = format_competence(people, certs)
    assert exported.splitlines()[0] == HEADER
    rows = audit_rows(engine)
    plan = do_import(engine, exported)
    assert plan.changes == 0 and plan.people_not_in_file == ()
    assert plan.certifications_not_in_file == ()
    assert audit_rows(engine) == rows
    # the same again with Excel's delimiter
    with engine.connect() as conn:
        people, certs = export_records(conn)
    assert do_import(engine, format_competence(people, certs, delimiter=";")).changes == 0
