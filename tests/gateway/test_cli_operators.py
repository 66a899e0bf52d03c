"""`trygg operators import|export|list` against a real store: problems with line and column and
exit 2, the dry run, the idempotent re-import, export -> import as a no-op, and the status of
each certification today."""

from __future__ import annotations

import getpass
import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from gateway.cli import app
from gateway.config import load_config
from gateway.store.engine import make_engine, upgrade
from gateway.store.tables import audit

runner = CliRunner()
TODAY = datetime.now(ZoneInfo("Europe/Oslo")).date()
HEADER = "person,name,operator_ids,roles,task,status,certified_on,recert_due,supervisor,evidence"
PAST = (TODAY - timedelta(days=3)).isoformat()
LATER = (TODAY + timedelta(days=200)).isoformat()
FILE = (
    f"{HEADER}\n"
    f"bente,Bente Hansen,BH,operator;verifier;supervisor,astm_afinion2,certified,2025-03-01,"
    f"{LATER},,kurs 2025\n"
    "bente,Bente Hansen,BH,operator;verifier;supervisor,clinitek-1,certified,2025-03-01,"
    f"{LATER},,\n"
    "tone,Tone Strand,TS;TS@afinion-1,operator,clinitek-1,trainee,,,bente,\n"
    f"kari,Kari Nordmann,KN,operator,afinion-1,certified,2024-01-10,{PAST},,\n"
    "eva,Eva Dahl,,admin,,,,,,\n"
)


def write_site(tmp_path: Path, store_url: str) -> Path:
    config = tmp_path / "site.toml"
    config.write_text(
        f"""
[site]
name = "ops-test"
[store]
url = "{store_url}"
[[instruments]]
id = "afinion-1"
driver = "astm_afinion2"
url = "tcp-listen://127.0.0.1:5998"
[[instruments]]
id = "clinitek-1"
driver = "astm_clinitek_status"
url = "tcp-listen://127.0.0.1:5999"
[[tests]]
code = "HbA1c"
[[tests]]
code = "GLU"
""",
        encoding="utf-8",
    )
    return config


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> Path:
    return write_site(tmp_path, sqlite_url)


def audit_actions(config: Path) -> list[tuple[str, str]]:
    engine = make_engine(load_config(config).store.url)
    upgrade(engine)
    try:
        with engine.connect() as conn:
            return [
                (r.action, r.actor) for r in conn.execute(select(audit.c.action, audit.c.actor))
            ]
    finally:
        engine.dispose()


def audit_count(config: Path) -> int:
    engine = make_engine(load_config(config).store.url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(audit)).scalar_one())
    finally:
        engine.dispose()


def people_json(config: Path) -> list[dict[str, object]]:
    result = runner.invoke(app, ["operators", "list", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def csv_file(tmp_path: Path, text: str, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_problems_are_listed_with_line_and_column_and_nothing_is_imported(
    site: Path, tmp_path: Path
) -> None:
    bad = FILE.replace("astm_afinion2", "afinon-1").replace("trainee,,,bente", "trainee,,,")
    result = runner.invoke(
        app, ["operators", "import", str(csv_file(tmp_path, bad)), "--config", str(site)]
    )
    assert result.exit_code == 2
    assert "2 problem(s); nothing was imported" in result.stderr
    assert "line 2, column task: unknown instrument or driver 'afinon-1'" in result.stderr
    assert "line 4, column supervisor: a trainee needs a supervisor" in result.stderr
    assert people_json(site) == []

    as_json = runner.invoke(
        app,
        ["operators", "import", str(tmp_path / "people.csv"), "--json", "--config", str(site)],
    )
    assert as_json.exit_code == 2
    data = json.loads(as_json.stdout)
    assert data["ok"] is False
    assert [(p["line"], p["column"], p["code"], p["value"]) for p in data["problems"]] == [
        (2, "task", "unknown_target", "afinon-1"),
        (4, "supervisor", "trainee_needs_supervisor", ""),
    ]


def test_dry_run_changes_nothing_then_import_then_again_changes_nothing(
    site: Path, tmp_path: Path
) -> None:
    path = csv_file(tmp_path, FILE)
    dry = runner.invoke(
        app,
        ["operators", "import", str(path), "--dry-run", "--config", str(site)],
        env={"COLUMNS": "200"},
    )
    assert dry.exit_code == 0, dry.output
    assert "Dry run, nothing was changed" in dry.stdout
    assert "would create 4 and change 0 people" in dry.stdout
    assert "tone clinitek-1" in dry.stdout
    assert people_json(site) == [] and audit_count(site) == 0

    done = runner.invoke(app, ["operators", "import", str(path), "--config", str(site)])
    assert done.exit_code == 0, done.output
    assert "4 people created" in done.stdout and "4 certifications created" in done.stdout
    actors = {actor for _, actor in audit_actions(site)}
    assert actors == {getpass.getuser()}  # no --by: the OS user
    rows = audit_count(site)

    again = runner.invoke(
        app, ["operators", "import", str(path), "--by", "hilde", "--config", str(site)]
    )
    assert again.exit_code == 0, again.output
    assert "Nothing changed" in again.stdout
    assert audit_count(site) == rows

    changed = csv_file(tmp_path, FILE.replace("Tone Strand", "Tone Berg"), "changed.csv")
    result = runner.invoke(
        app, ["operators", "import", str(changed), "--by", "hilde", "--json", "--config", str(site)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["counts"]["people"] == {
        "created": 0,
        "changed": 1,
        "unchanged": 3,
        "not_in_file": 0,
    }
    assert [p["fields"] for p in data["people"] if p["change"] == "changed"] == [
        [{"field": "name", "before": "Tone Strand", "after": "Tone Berg"}]
    ]
    assert {a for a, actor in audit_actions(site) if actor == "hilde"} == {
        "person.updated",
        "competence.imported",
    }


def test_export_then_import_is_a_no_op(site: Path, tmp_path: Path) -> None:
    semicolons = (
        FILE.replace(",", ";")
        .replace("operator;verifier;supervisor", "operator|verifier|supervisor")
        .replace("TS;TS@afinion-1", "TS|TS@afinion-1")
    )
    path = tmp_path / "excel.csv"
    path.write_bytes(semicolons.encode("utf-8-sig"))
    assert (
        runner.invoke(app, ["operators", "import", str(path), "--config", str(site)]).exit_code == 0
    )
    rows = audit_count(site)

    out = tmp_path / "export.csv"
    exported = runner.invoke(app, ["operators", "export", "--out", str(out), "--config", str(site)])
    assert exported.exit_code == 0, exported.output
    assert "Exported 4 people and 4 certifications" in exported.stderr
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # for Excel
    again = runner.invoke(app, ["operators", "import", str(out), "--config", str(site)])
    assert again.exit_code == 0 and "Nothing changed" in again.stdout
    assert audit_count(site) == rows

    stdout = runner.invoke(app, ["operators", "export", "--delimiter", ";", "--config", str(site)])
    assert stdout.exit_code == 0
    assert stdout.stdout.splitlines()[0] == HEADER.replace(",", ";")
    assert "bente;Bente Hansen;BH;operator|verifier|supervisor;astm_afinion2;" in stdout.stdout
    piped = csv_file(tmp_path, stdout.stdout, "piped.csv")
    assert (
        "Nothing changed"
        in runner.invoke(app, ["operators", "import", str(piped), "--config", str(site)]).stdout
    )
    bad = runner.invoke(app, ["operators", "export", "--delimiter", "\t", "--config", str(site)])
    assert bad.exit_code == 2


def test_list_shows_each_certification_as_it_is_today(site: Path, tmp_path: Path) -> None:
    assert (
        runner.invoke(
            app, ["operators", "import", str(csv_file(tmp_path, FILE)), "--config", str(site)]
        ).exit_code
        == 0
    )
    people = {p["person"]: p for p in people_json(site)}
    kari = people["kari"]
    (cert,) = kari["certifications"]  # type: ignore[misc]
    assert cert["status"] == "certified" and cert["effective_status"] == "expired"
    assert kari["operator_ids"] == ["KN"] and kari["roles"] == ["operator"]
    bente = {c["task"]: c["effective_status"] for c in people["bente"]["certifications"]}  # type: ignore[attr-defined]
    assert bente == {"astm_afinion2": "certified", "clinitek-1": "certified"}
    assert people["eva"]["certifications"] == [] and people["eva"]["can_sign_in"] is False

    table = runner.invoke(app, ["operators", "list", "--config", str(site)], env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert "Expired (recorded: Certified)" in table.stdout
    assert "TS, TS@afinion-1" in table.stdout


def test_list_on_an_empty_store_says_how_to_import(site: Path) -> None:
    result = runner.invoke(app, ["operators", "list", "--config", str(site)])
    assert result.exit_code == 0 and "trygg operators import" in result.stdout


@pytest.mark.postgres
def test_import_export_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    site = write_site(tmp_path, postgres_url)
    path = csv_file(tmp_path, FILE)
    first = runner.invoke(app, ["operators", "import", str(path), "--config", str(site)])
    assert first.exit_code == 0, first.output
    rows = audit_count(site)
    assert (
        "Nothing changed"
        in runner.invoke(app, ["operators", "import", str(path), "--config", str(site)]).stdout
    )
    out = tmp_path / "export.csv"
    assert (
        runner.invoke(
            app, ["operators", "export", "--out", str(out), "--config", str(site)]
        ).exit_code
        == 0
    )
    assert (
        "Nothing changed"
        in runner.invoke(app, ["operators", "import", str(out), "--config", str(site)]).stdout
    )
    assert audit_count(site) == rows
    assert {p["person"] for p in people_json(site)} == {"bente", "tone", "kari", "eva"}
