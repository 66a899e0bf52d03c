"""The deviation pages: the list with filters and counts, reporting by hand, the detail page's
forms by role, the signed close, and the export."""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]
from sqlalchemy import Engine, select

from gateway.config import Config
from gateway.people.roles import Role
from gateway.store.tables import deviation_events, deviations
from gateway.web.app import create_app
from tests.web.conftest import LOCAL, PASSWORD, Seeded, add_person, sign_in

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


@pytest.fixture
def client(web_config: Config, web_engine: Engine, seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(web_config, web_engine), base_url=LOCAL) as test_client:
        yield test_client


def post(client: TestClient, path: str, csrf: str, **fields: str) -> object:
    return client.post(path, data={"csrf": csrf, **fields}, follow_redirects=False)


def test_the_list_shows_counts_and_filters(client: TestClient) -> None:
    sign_in(client, Role.OPERATOR)
    html = client.get("/deviations").text
    counts = dict(re.findall(r'data-state="(\w+)"><span class="n">(\d+)</span>', html))
    assert counts == {"open": "2", "in_progress": "0", "closed": "0"}  # LIS rejection, quarantine
    assert 'href="/deviations/new"' in html
    assert "export.xlsx" not in html  # the export is the handlers'
    only_it = client.get("/deviations", params={"category": "it"}).text
    assert 'data-kind="lis_rejected"' in only_it and 'data-kind="quarantine"' not in only_it
    assert "01010012356" not in html


def test_report_work_through_and_close(client: TestClient, web_engine: Engine) -> None:
    operator = sign_in(client, Role.OPERATOR, person="ola")
    response = post(
        client,
        "/deviations/new",
        operator.csrf,
        category="clinical",
        summary="Prøve tatt på feil pasient",
        detail="Oppdaget ved svar 01010012356",
        immediate_action="Svaret holdt tilbake",
        instrument="",
        result_id="",
    )
    assert response.status_code == 303  # type: ignore[attr-defined]
    path = response.headers["location"]  # type: ignore[attr-defined]
    page = client.get(path).text
    assert "Takk for at du meldte fra" in page and "Faglig leder" in page
    assert "01010012356" not in page and "010100*****" in page
    assert 'id="form-immediate-action"' in page and 'id="form-handling"' not in page
    refused = post(client, path + "/handling", operator.csrf, cause="x", corrective_action="y")
    assert refused.status_code == 403  # type: ignore[attr-defined]

    add_person(web_engine, "siri", [Role.SUPERVISOR], password=PASSWORD)
    supervisor = sign_in(client, Role.SUPERVISOR, person="siri")
    page = client.get(path).text
    assert 'id="form-handling"' in page and 'id="form-start"' in page
    done = post(
        client,
        path + "/handling",
        supervisor.csrf,
        cause="Etiketter skrevet ut på forhånd",
        corrective_action="Etiketter skrives ut ved prøvetaking",
        category="clinical",
    )
    assert done.status_code == 303  # type: ignore[attr-defined]
    wrong = post(client, path + "/close", supervisor.csrf, note="", password="feil")
    assert wrong.status_code == 422  # type: ignore[attr-defined]
    assert "Under behandling" in wrong.text  # type: ignore[attr-defined]
    closed = post(client, path + "/close", supervisor.csrf, note="", password=PASSWORD)
    assert closed.status_code == 303  # type: ignore[attr-defined]
    page = client.get(path).text
    assert 'data-state="closed"' in page and "signert" in page
    assert re.search(r'id="closed-by">[^<]*siri', page)
    assert 'id="form-reopen"' not in page  # the quality manager's
    again = post(client, path + "/reopen", supervisor.csrf, reason="Nei")
    assert again.status_code == 403  # type: ignore[attr-defined]


def test_refusals_keep_what_was_typed(client: TestClient) -> None:
    signed = sign_in(client, Role.SUPERVISOR)
    response = post(
        client,
        "/deviations/new",
        signed.csrf,
        category="equipment",
        summary="",
        detail="Noe jeg skrev",
        immediate_action="",
        instrument="",
        result_id="",
    )
    assert response.status_code == 422  # type: ignore[attr-defined]
    assert "Noe jeg skrev" in response.text  # type: ignore[attr-defined]
    close = post(client, "/deviations/1/close", signed.csrf, note="Ferdig", password=PASSWORD)
    assert close.status_code in (409, 422)  # type: ignore[attr-defined]
    assert client.get("/deviations/999999").status_code == 404


def test_the_export_for_the_handlers(client: TestClient) -> None:
    sign_in(client, Role.QUALITY_MANAGER)
    xlsx = client.get("/deviations/export.xlsx", params={"year": "2026"})
    assert xlsx.status_code == 200
    assert "avvik_2026.xlsx" in xlsx.headers["content-disposition"]
    book = load_workbook(io.BytesIO(xlsx.content))
    rows = list(book["deviations"].iter_rows(values_only=True))
    assert rows[0][0] == "id" and len(rows) == 3
    csv = client.get("/deviations/export.csv", params={"from": "2026-01-01", "to": "2026-01-31"})
    assert csv.status_code == 200 and csv.content.startswith(b"\xef\xbb\xbf")
    assert "01010012356" not in csv.content.decode("utf-8")
    assert client.get("/deviations/export.csv", params={"year": "x"}).status_code == 422


def test_every_form_reaches_its_store_command(client: TestClient, web_engine: Engine) -> None:
    """Immediate action, comment, start, close and reopen each change what is stored, with
    the person who did it in the history (every form's arguments reach the store)."""
    operator = sign_in(client, Role.OPERATOR, person="ola")
    created = post(client, "/deviations/new", operator.csrf, category="equipment",
                   summary="Kjøleskapet viste 12 °C", detail="", immediate_action="",
                   instrument="", result_id="")  # fmt: skip
    path = created.headers["location"]  # type: ignore[attr-defined]
    deviation_id = int(path.rsplit("/", 1)[1])
    for form, fields in (
        ("immediate-action", {"immediate_action": "Reagenser flyttet"}),
        ("comment", {"comment": "Termometeret er byttet"}),
    ):
        done = post(client, f"{path}/{form}", operator.csrf, **fields)
        assert done.status_code == 303, form  # type: ignore[attr-defined]
    add_person(web_engine, "siri", [Role.SUPERVISOR], password=PASSWORD)
    supervisor = sign_in(client, Role.SUPERVISOR, person="siri")
    assert post(client, f"{path}/start", supervisor.csrf).status_code == 303  # type: ignore[attr-defined]
    assert state(web_engine, deviation_id) == "in_progress"
    post(client, f"{path}/handling", supervisor.csrf, cause="Døren sto åpen",
         corrective_action="Dørvarsler montert", category="equipment")  # fmt: skip
    closed = post(client, f"{path}/close", supervisor.csrf, note="", password=PASSWORD)
    assert closed.status_code == 303  # type: ignore[attr-defined]
    add_person(web_engine, "kari", [Role.QUALITY_MANAGER], password=PASSWORD)
    manager = sign_in(client, Role.QUALITY_MANAGER, person="kari")
    reopened = post(client, f"{path}/reopen", manager.csrf, reason="Skjedde igjen i dag")
    assert reopened.status_code == 303  # type: ignore[attr-defined]
    assert state(web_engine, deviation_id) == "in_progress"
    with web_engine.connect() as conn:
        row = conn.execute(select(deviations).where(deviations.c.id == deviation_id)).one()
        events = conn.execute(
            select(
                deviation_events.c.person, deviation_events.c.action, deviation_events.c.to_value
            )
            .where(deviation_events.c.deviation_id == deviation_id)
            .order_by(deviation_events.c.id)
        ).all()
    assert row.immediate_action == "Reagenser flyttet"
    assert ("ola", "comment", "Termometeret er byttet") in events
    assert ("ola", "immediate_action", "Reagenser flyttet") in events
    assert ("siri", "status", "in_progress") in events and ("siri", "status", "closed") in events
    assert ("kari", "status", "in_progress") in events


def state(engine: Engine, deviation_id: int) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                select(deviations.c.state).where(deviations.c.id == deviation_id)
            ).scalar_one()
        )
