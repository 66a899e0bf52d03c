"""`trygg deviations`: add, update, close (signed with the password), list, show and export,
against a real SQLite store; the role and password checks are the web's."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]
from typer.testing import CliRunner

from gateway.cli import app
from gateway.people.roles import Role
from gateway.store import people
from gateway.store.engine import make_engine, upgrade
from gateway.store.signin import set_password
from gateway.store.writer import Tx, run_in_transaction

runner = CliRunner()
PASSWORD = "korrekt hest batteri stift"
ENV = {"TRYGG_PASSWORD": PASSWORD}


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> Path:
    config = tmp_path / "site.toml"
    config.write_text(f'[site]\nname = "avvik-test"\n[store]\nurl = "{sqlite_url}"\n')
    engine = make_engine(sqlite_url)
    upgrade(engine)

    def job(tx: Tx) -> None:
        for person, role in (("ola", Role.OPERATOR), ("siri", Role.SUPERVISOR)):
            people.upsert_person(tx, person, name=person.title(), roles=[role], actor="test")
            set_password(tx, person, PASSWORD, actor="test")

    run_in_transaction(engine, job)
    engine.dispose()
    return config


def trygg(site: Path, *args: str, env: dict[str, str] | None = None) -> object:
    return runner.invoke(app, ["deviations", *args, "--config", str(site)], env=env or ENV)


def test_add_update_close_list_show_export(site: Path, tmp_path: Path) -> None:
    added = trygg(
        site,
        "add",
        "--user",
        "ola",
        "--summary",
        "Kjøleskap for reagens viste 12 °C",
        "--category",
        "equipment",
        "--immediate-action",
        "Reagenser flyttet",
    )
    assert added.exit_code == 0, added.output  # type: ignore[attr-defined]
    listed = json.loads(trygg(site, "list", "--json").stdout)  # type: ignore[attr-defined]
    (row,) = listed
    deviation_id = str(row["id"])
    assert (row["state"], row["responsible"]) == ("open", "Utstyrsansvarlig")
    # the operator may not record the cause; a wrong password signs nothing
    refused = trygg(site, "update", deviation_id, "--user", "ola", "--cause", "Dør sto åpen")
    assert refused.exit_code == 1  # type: ignore[attr-defined]
    wrong = trygg(site, "close", deviation_id, "--user", "siri", env={"TRYGG_PASSWORD": "not it"})
    assert wrong.exit_code == 1 and "Not signed" in wrong.output  # type: ignore[attr-defined]
    early = trygg(site, "close", deviation_id, "--user", "siri")
    assert early.exit_code == 1  # open: not yet taken up  # type: ignore[attr-defined]
    updated = trygg(
        site,
        "update",
        deviation_id,
        "--user",
        "siri",
        "--cause",
        "Dør sto åpen",
        "--corrective-action",
        "Alarm på kjøleskapet",
    )
    assert updated.exit_code == 0, updated.output  # type: ignore[attr-defined]
    closed = trygg(site, "close", deviation_id, "--user", "siri")
    assert closed.exit_code == 0, closed.output  # type: ignore[attr-defined]
    shown = json.loads(trygg(site, "show", deviation_id).stdout)  # type: ignore[attr-defined]
    assert (shown["state"], shown["closed_by"]) == ("closed", "siri")
    assert [e["action"] for e in shown["history"]][-1] == "status"
    assert json.loads(trygg(site, "list", "--state", "open", "--json").stdout) == []  # type: ignore[attr-defined]
    out = tmp_path / "avvik.xlsx"
    exported = trygg(site, "export", "--format", "xlsx", "-o", str(out))
    assert exported.exit_code == 0, exported.output  # type: ignore[attr-defined]
    book = load_workbook(io.BytesIO(out.read_bytes()))
    rows = list(book["deviations"].iter_rows(values_only=True))
    assert rows[0][0] == "id" and rows[1][rows[0].index("closed_by")] == "siri"
    csv_out = tmp_path / "avvik.csv"
    assert (
        trygg(
            site, "export", "--format", "csv", "--from", "2000-01-01", "-o", str(csv_out)
        ).exit_code
        == 0
    )  # type: ignore[attr-defined]
    assert csv_out.read_bytes().startswith(b"\xef\xbb\xbf")
    bad = trygg(site, "export", "--year", "abc", "-o", str(csv_out))
    assert bad.exit_code == 2  # type: ignore[attr-defined]
