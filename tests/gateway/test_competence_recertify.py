"""Recertification (DOMAIN rule 10) against a real store: confirmed moves the due date on and
certifies an expired certification again; unclear leaves it, raises a deviation for the
nearest manager and an MQTT event; both audited, both reload the rules' facts."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from gateway.cli import app
from gateway.people.certification import CertStatus
from gateway.people.competence import parse_competence
from gateway.store.competence import apply_import
from gateway.store.engine import make_engine
from gateway.store.people import load_people
from gateway.store.recertification import (
    Outcome,
    RecertifyRefused,
    next_due,
    recertify,
)
from gateway.store.signin import set_password
from gateway.store.tables import (
    audit,
    deviations,
    facts_version,
    recertifications,
    signatures,
)
from gateway.store.writer import Event, GroupCommitWriter, Tx, run_in_transaction
from tests.gateway.test_cli_operators import write_site

# 23:30 UTC on 7 December is already 8 December in Oslo
NOW = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)
HEADER = "person,name,operator_ids,roles,task,status,certified_on,recert_due,supervisor,evidence"
FILE = (
    f"{HEADER}\n"
    "bente,Bente Hansen,BH,operator;supervisor,astm_afinion2,certified,2025-01-01,2027-01-05,,\n"
    "kari,Kari Nordmann,KN,operator,afinion-1,expired,2024-01-10,2025-06-30,bente,\n"
    "kari,Kari Nordmann,KN,operator,clinitek-1:GLU,certified,2025-02-01,2027-02-01,bente,\n"
    "tone,Tone Strand,TS,operator,clinitek-1,trainee,,,bente,\n"
    "ola,Ola Dahl,OD,operator,clinitek-1,suspended,2025-01-01,,,\n"
)


@pytest.fixture
def people(engine: Engine) -> Engine:
    parsed = parse_competence(FILE)
    assert parsed.ok, parsed.problems
    run_in_transaction(engine, lambda tx: apply_import(tx, parsed, actor="setup"), NOW)
    return engine


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        query = select(func.count()).select_from(table)
        return int(conn.execute(query.where(*where) if where else query).scalar_one())


def version(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(facts_version.c.version)).scalar_one())


def certification(engine: Engine, person: str, target: str) -> Any:
    with engine.connect() as conn:
        facts = load_people(conn)
    return next(c for c in facts.certifications[person] if c.task.target == target)


def through_writer(engine: Engine, job: Any) -> tuple[Any, list[Event]]:
    """Run ``job`` the way the gateway does: its events reach the bus after the commit."""
    events: list[Event] = []
    writer = GroupCommitWriter(engine, on_events=events.extend)
    writer.start()
    try:
        result = writer.submit(job).result(timeout=30)
    finally:
        writer.stop()
    return result, events


def test_next_due_keeps_the_schedule_early_and_restarts_it_late() -> None:
    today = date(2026, 12, 8)
    assert next_due(date(2027, 1, 5), today, 365) == date(2028, 1, 5)
    assert next_due(date(2025, 6, 30), today, 365) == date(2027, 12, 8)
    assert next_due(None, today, 30) == date(2027, 1, 7)


def test_confirmed_moves_the_due_date_on(people: Engine) -> None:
    before, rows = version(people), count(people, audit)
    done = run_in_transaction(
        people,
        lambda tx: recertify(
            tx, "bente", "astm_afinion2", "confirmed", "read SOP v3", interval_days=365
        ),
        NOW,
    )
    assert done.outcome is Outcome.CONFIRMED
    assert (done.due_before, done.due) == (date(2027, 1, 5), date(2028, 1, 5))
    assert certification(people, "bente", "astm_afinion2").recert_due == date(2028, 1, 5)
    assert version(people) > before
    with people.connect() as conn:
        (row,) = conn.execute(select(recertifications)).all()
        actions = [
            r.action
            for r in conn.execute(select(audit.c.action, audit.c.actor).where(audit.c.id > rows))
        ]
    assert (row.person, row.task, row.outcome, row.note) == (
        "bente",
        "astm_afinion2",
        "confirmed",
        "read SOP v3",
    )
    assert actions == ["certification.set", "certification.recertified"]


def test_confirmed_certifies_an_expired_certification_again_from_today_in_oslo(
    people: Engine,
) -> None:
    done = run_in_transaction(
        people,
        lambda tx: recertify(tx, "kari", "afinion-1", Outcome.CONFIRMED, interval_days=30),
        NOW,
    )
    assert done.status_before is CertStatus.EXPIRED and done.status is CertStatus.CERTIFIED
    cert = certification(people, "kari", "afinion-1")
    assert cert.status is CertStatus.CERTIFIED
    assert cert.recert_due == date(2027, 1, 7)  # 8 December (Oslo) + 30 days


def test_unclear_leaves_the_certification_and_tells_the_nearest_manager(people: Engine) -> None:
    before = version(people)
    task = "clinitek-1:GLU"

    def job(tx: Tx) -> Any:
        return recertify(tx, "kari", task, "unclear", "the new strip lot's procedure")

    done, events = through_writer(people, job)
    assert done.outcome is Outcome.UNCLEAR and done.deviation_id is not None
    cert = certification(people, "kari", "clinitek-1")
    assert (cert.status, cert.recert_due) == (CertStatus.CERTIFIED, date(2027, 2, 1))
    with people.connect() as conn:
        deviation = conn.execute(select(deviations)).one()
        (row,) = conn.execute(select(recertifications)).all()
        actions = {r.action for r in conn.execute(select(audit.c.action))}
    assert row.outcome == "unclear" and row.note == "the new strip lot's procedure"
    assert deviation.kind == "recertification_unclear"
    assert deviation.responsible_function == "Kvalitetsansvarlig"
    assert "kari" in deviation.summary and "bente" in deviation.summary
    assert deviation.detail == "the new strip lot's procedure"
    assert {"certification.recertification_unclear", "deviation.recorded"} <= actions
    assert version(people) > before
    certification_events = [e for e in events if e[0] == "certification"]
    assert certification_events == [
        (
            "certification",
            "-",
            {
                "person": "kari",
                "task": task,
                "notice": "recertification_unclear",
                "supervisor": "bente",
                "deviation": done.deviation_id,
                "due": "2027-02-01",
            },
        )
    ]
    assert any(e[0] == "deviation" for e in events)


@pytest.mark.parametrize(
    ("person", "task", "outcome", "note", "code"),
    [
        ("tone", "clinitek-1", "confirmed", "", "trainee"),
        ("ola", "clinitek-1", "confirmed", "", "suspended"),
        ("bente", "clinitek-1", "confirmed", "", "no_certification"),
        ("nobody", "clinitek-1", "confirmed", "", "no_certification"),
        ("kari", "afinion-1", "unclear", "  ", "note_required"),
    ],
)
def test_refused_recertifications_write_nothing(
    people: Engine, person: str, task: str, outcome: str, note: str, code: str
) -> None:
    rows, before = count(people, audit), version(people)
    with pytest.raises(RecertifyRefused) as refused:
        run_in_transaction(people, lambda tx: recertify(tx, person, task, outcome, note), NOW)
    assert refused.value.code == code
    assert count(people, recertifications) == 0
    assert count(people, audit) == rows and version(people) == before


runner = CliRunner()
SIGNING = "long enough password"
RECERTIFY_BENTE = ("operators", "recertify", "bente", "astm_afinion2", "--outcome", "confirmed")


def test_cli_recertify_both_outcomes(tmp_path: Path, sqlite_url: str) -> None:
    site = write_site(tmp_path, sqlite_url)
    path = tmp_path / "people.csv"
    path.write_text(FILE, encoding="utf-8")
    assert (
        runner.invoke(app, ["operators", "import", str(path), "--config", str(site)]).exit_code == 0
    )
    # the operator signs their own recertification with their password (DOMAIN rule 10)
    engine = make_engine(sqlite_url)
    for person in ("bente", "kari", "tone"):
        run_in_transaction(engine, lambda tx, p=person: set_password(tx, p, SIGNING, actor="test"))
    engine.dispose()
    signing = {"TRYGG_PASSWORD": SIGNING}
    wrong = runner.invoke(
        app,
        [*RECERTIFY_BENTE, "--config", str(site)],
        env={"TRYGG_PASSWORD": "not her password"},
    )
    assert wrong.exit_code == 1 and "Not signed" in wrong.stderr
    other = runner.invoke(
        app,
        [*RECERTIFY_BENTE, "--by", "kari", "--config", str(site)],
        env=signing,
    )
    assert other.exit_code == 2 and "only one's own recertification" in other.stderr

    ok = runner.invoke(
        app,
        [
            "operators",
            "recertify",
            "bente",
            "astm_afinion2",
            "--outcome",
            "confirmed",
            "--by",
            "bente",
            "--config",
            str(site),
        ],
        env=signing,
    )
    assert ok.exit_code == 0, ok.output
    assert "Recertified bente for astm_afinion2" in ok.stdout and "(was 2027-01-05)" in ok.stdout

    unclear = runner.invoke(
        app,
        [
            "operators",
            "recertify",
            "kari",
            "clinitek-1:GLU",
            "--outcome",
            "unclear",
            "--note",
            "new lot",
            "--json",
            "--config",
            str(site),
        ],
        env=signing,
    )
    assert unclear.exit_code == 0, unclear.output
    assert '"outcome": "unclear"' in unclear.stdout and '"deviation": 1' in unclear.stdout
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        signed = conn.execute(select(signatures.c.person, signatures.c.meaning)).all()
    engine.dispose()
    assert sorted(signed) == [("bente", "recertify"), ("kari", "recertify")]

    refused = runner.invoke(
        app,
        [
            "operators",
            "recertify",
            "tone",
            "clinitek-1",
            "--outcome",
            "confirmed",
            "--config",
            str(site),
        ],
        env=signing,
    )
    assert refused.exit_code == 2 and "tone is a trainee for clinitek-1" in refused.stderr
    bad = runner.invoke(
        app,
        [
            "operators",
            "recertify",
            "kari",
            "afinion-1",
            "--outcome",
            "maybe",
            "--config",
            str(site),
        ],
    )
    assert bad.exit_code == 2 and "confirmed or unclear" in bad.stderr
