"""The access log (Normen) over the real app and store: a row per result a page or API answer
showed, raw views, the per-patient extract (page and CLI), masking on the general list."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from drivers.analysers import generic_hl7
from gateway.cli import app as cli
from gateway.config import Config
from gateway.ingest import store_message
from gateway.people.roles import Role
from gateway.rules import context_from_config
from gateway.store.tables import access_log
from gateway.store.writer import run_in_transaction
from gateway.web.app import create_app
from tests.web.conftest import (
    BAD_FNR,
    LOCAL,
    OTHER_FNR,
    T0,
    TESTER,
    VALID_FNR,
    Clock,
    Seeded,
    open_session,
    sign_in,
    use_session,
)
from tests.web.test_personal_data import BROKEN_PID, FNR

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

runner = CliRunner()
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def client(
    web_config: Config, web_engine: Engine, seeded: Seeded, clock: Clock
) -> Iterator[TestClient]:
    app = create_app(web_config, web_engine)
    app.state.web.clock = clock
    with TestClient(app, base_url=LOCAL) as test_client:
        sign_in(test_client)  # tester: operator, verifier, supervisor, quality manager
        yield test_client


def logged(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [
            dict(r) for r in conn.execute(select(access_log).order_by(access_log.c.id)).mappings()
        ]


def test_a_result_page_writes_one_row_with_the_patient(
    client: TestClient, web_engine: Engine, seeded: Seeded
) -> None:
    assert client.get(f"/results/{seeded.rejected}").status_code == 200
    (row,) = logged(web_engine)
    assert row["person"] == TESTER and row["action"] == "read"
    assert row["result_id"] == seeded.rejected and row["patient_id"] == OTHER_FNR
    assert row["route"] == f"GET /results/{seeded.rejected}" and row["at"] == T0


def test_a_list_writes_a_row_per_shown_result_once_per_ten_minutes(
    client: TestClient, web_engine: Engine, seeded: Seeded, clock: Clock
) -> None:
    client.get("/results", params={"state": "held"})
    held = {r["result_id"]: r["patient_id"] for r in logged(web_engine)}
    assert held == {
        seeded.invalid_patient: BAD_FNR,
        seeded.missing_patient: "",
        seeded.unmapped: VALID_FNR,
    }
    clock.advance(minutes=5)
    client.get("/results", params={"state": "held"})  # the refresh, a click back: nothing new
    client.get("/results", params={"state": "held"}, headers={"x-trygg-refresh": "1"})
    assert len(logged(web_engine)) == 3
    client.get("/results")  # every result: only the four not logged yet are new
    assert len(logged(web_engine)) == 7
    clock.advance(minutes=10)
    client.get("/results", params={"state": "held"})  # another look, later: logged again
    assert len(logged(web_engine)) == 10


def test_the_dashboard_and_the_api_are_logged_too(
    client: TestClient, web_engine: Engine, seeded: Seeded
) -> None:
    client.get("/")
    assert {r["route"] for r in logged(web_engine)} == {"GET /"}
    assert len(logged(web_engine)) == 7  # the dashboard lists the newest results
    client.get("/api/results", params={"limit": 2})
    client.get(f"/api/results/{seeded.acknowledged}")
    routes = [r["route"] for r in logged(web_engine)[7:]]
    # the API's rows are within ten minutes of the dashboard's for the same results: not again
    assert routes == []
    other = open_session(web_engine, "script", [Role.OPERATOR])
    use_session(client, other.token)
    client.get("/api/results", params={"limit": 2})
    client.get(f"/api/results/{seeded.acknowledged}")
    rows = [r for r in logged(web_engine) if r["person"] == "script"]
    assert [r["route"] for r in rows] == ["GET /api/results"] * 2 + [
        f"GET /api/results/{seeded.acknowledged}"
    ]


def test_refused_and_missing_pages_log_nothing(
    client: TestClient, web_engine: Engine, seeded: Seeded
) -> None:
    admin = open_session(web_engine, "ada", [Role.ADMIN])
    use_session(client, admin.token)
    assert client.get(f"/results/{seeded.rejected}").status_code == 403
    assert client.get("/api/results").status_code == 403
    sign_in(client)
    assert client.get("/results/9999").status_code == 404
    assert logged(web_engine) == []


def test_a_raw_view_logs_the_national_ids_in_the_bytes(
    client: TestClient, web_engine: Engine, web_config: Config
) -> None:
    refused = generic_hl7.decode("bench-1", BROKEN_PID, T0)
    run_in_transaction(
        web_engine, lambda tx: store_message(tx, refused, context_from_config(web_config)), T0
    )
    listed = client.get("/api/quarantine").json()
    qid = max(q["id"] for q in listed)
    assert client.get(f"/quarantine/{qid}").status_code == 200  # the entry, not its bytes
    assert logged(web_engine) == []
    assert FNR in client.get(f"/quarantine/{qid}/raw").text
    client.get(f"/api/quarantine/{qid}/raw")
    rows = logged(web_engine)
    assert [(r["action"], r["patient_id"], r["detail"]) for r in rows] == [
        ("raw", FNR, f"quarantine {qid}"),
        ("raw", FNR, f"quarantine {qid}"),
    ]
    assert [r["route"] for r in rows] == [
        f"GET /quarantine/{qid}/raw",
        f"GET /api/quarantine/{qid}/raw",
    ]
    # the seeded broken message holds no valid ID: one row without a patient
    first = min(q["id"] for q in listed)
    client.get(f"/quarantine/{first}/raw")
    assert logged(web_engine)[-1]["patient_id"] == ""


def extract(client: TestClient, patient: str) -> Any:
    token = _CSRF.findall(client.get("/access-log/patient").text)[-1]  # the page's own form
    return client.post("/access-log/patient", data={"csrf": token, "patient": patient})


def test_the_per_patient_extract_lists_who_looked_and_logs_the_search(
    client: TestClient, web_engine: Engine, seeded: Seeded, clock: Clock
) -> None:
    client.get(f"/results/{seeded.rejected}")  # OTHER_FNR's result, seen by the tester
    clock.advance(minutes=3)
    quality = open_session(web_engine, "kq", [Role.QUALITY_MANAGER])
    use_session(client, quality.token)
    page = extract(client, OTHER_FNR)
    assert page.status_code == 200
    body = page.text
    assert f"Tilganger til prøvesvarene til {OTHER_FNR}" in body
    assert f'href="/results/{seeded.rejected}"' in body
    assert "15.01.2026 10:30:00" in body and "Tester" in body  # when, who (Oslo time)
    assert "Uttrekk" not in body  # this search is logged, and shows in the next extract
    export = logged(web_engine)[-1]
    assert (export["person"], export["action"], export["patient_id"]) == (
        "kq",
        "export",
        OTHER_FNR,
    )
    clock.advance(minutes=1)
    again = extract(client, OTHER_FNR).text
    assert "15.01.2026 10:33:00" in again and "Uttrekk" in again and "(kq)</span>" in again
    nobody = extract(client, "24019138592").text
    assert "Ingen har sett prøvesvar for denne pasienten." in nobody
    assert logged(web_engine)[-1]["patient_id"] == "24019138592"  # logged all the same
    before = len(logged(web_engine))
    assert extract(client, "").status_code == 422
    assert len(logged(web_engine)) == before


def test_the_general_list_masks_patient_ids_and_filters_by_person(
    client: TestClient, web_engine: Engine, seeded: Seeded
) -> None:
    client.get(f"/results/{seeded.rejected}")
    admin = open_session(web_engine, "ada", [Role.ADMIN])
    use_session(client, admin.token)
    page = client.get("/access-log").text
    assert OTHER_FNR not in page and f"{OTHER_FNR[:6]}*****" in page
    assert f'href="/results/{seeded.rejected}"' in page
    assert 'data-access-id="' in client.get("/access-log", params={"person": TESTER}).text
    assert 'data-access-id="' not in client.get("/access-log", params={"person": "x"}).text


def test_the_cli_extract_and_list(
    client: TestClient, web_engine: Engine, seeded: Seeded, tmp_path: Path
) -> None:
    client.get(f"/results/{seeded.rejected}")
    site = tmp_path / "site.toml"
    site.write_text(
        f'[site]\nname = "t"\n[store]\nurl = "sqlite:///{tmp_path / "web.sqlite3"}"\n',
        encoding="utf-8",
    )
    found = runner.invoke(
        cli,
        ["access-log", "--patient", OTHER_FNR, "--json", "--by", "kq", "--config", str(site)],
    )
    assert found.exit_code == 0, found.output
    rows = json.loads(found.stdout)
    assert [(r["person"], r["action"], r["result_id"]) for r in rows] == [
        ("cli:kq", "export", None),
        (TESTER, "read", seeded.rejected),
    ]
    assert rows[1]["patient_id"] == OTHER_FNR and rows[1]["name"] == "Tester"
    listed = runner.invoke(cli, ["access-log", "--json", "--person", TESTER, "--config", str(site)])
    assert listed.exit_code == 0, listed.output
    (mine,) = json.loads(listed.stdout)
    assert mine["patient_id"] == f"{OTHER_FNR[:6]}*****"  # masked without --patient
    table = runner.invoke(cli, ["access-log", "--config", str(site)], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and OTHER_FNR not in table.stdout and "cli:kq" in table.stdout
