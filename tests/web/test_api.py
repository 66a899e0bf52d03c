"""The dashboard and JSON API over a real SQLite store: shapes, masking, languages, errors."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine

from drivers.model import Method
from gateway.app import Gateway, register_instruments
from gateway.config import Config, parse_config
from gateway.lis.outbox import hold_unbuildable, unassigned_queued
from gateway.model import HoldReason, State
from gateway.privacy import scrub
from gateway.store.engine import make_engine
from gateway.store.tables import holds
from gateway.store.writer import run_in_transaction
from gateway.texts import action_texts
from gateway.web import i18n
from gateway.web.app import create_app
from gateway.web.context import NAV
from tests.ports import free_port
from tests.web.conftest import (
    BAD_FNR,
    LOCAL,
    OTHER_FNR,
    SUMMER,
    T0,
    VALID_FNR,
    Seeded,
    ingest,
    make_config,
    observation,
    open_session,
    sign_in,
)

# what to do about each hold reason, by language (from the catalogues)
ACTION_TEXT = {lang: action_texts(lang) for lang in ("nb", "en")}

with warnings.catch_warnings():
    # Starlette 1.10 prefers httpx2 for its TestClient; httpx (our test extra) still works.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

TEMPLATES = Path(i18n.__file__).resolve().parent / "templates"
PAGES = ("/", "/results", "/outbox", "/quarantine", "/deviations", "/orders", "/docs")


@pytest.fixture
def client(web_config: Config, web_engine: Engine, seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(web_config, web_engine), base_url=LOCAL) as test_client:
        sign_in(test_client)
        yield test_client


@pytest.fixture
def live_client(
    web_config: Config, web_engine: Engine, seeded: Seeded, live_gateway: Gateway
) -> Iterator[TestClient]:
    with TestClient(
        create_app(web_config, web_engine, gateway=live_gateway), base_url=LOCAL
    ) as test_client:
        sign_in(test_client)
        yield test_client


def no_full_ids(body: str) -> None:
    for number in (VALID_FNR, OTHER_FNR, BAD_FNR):
        assert number not in body


# --- JSON API ------------------------------------------------------------------------------


def test_summary_counts(client: TestClient) -> None:
    body = client.get("/api/summary").json()
    assert body["received"] == 7
    assert body["by_state"] == {"acknowledged": 1, "held": 3, "queued": 2, "rejected": 1}
    assert body["held_by_reason"] == {
        "invalid_patient_id": 1,
        "missing_patient_id": 1,
        "unmapped_test": 1,
    }
    # the LIS's rejection and the quarantined message (issue 11: a deviation of its own)
    assert body["quarantined"] == 1 and body["deviations"] == 2
    assert body["outbox_by_state"] == {"acknowledged": 1, "pending": 1, "rejected": 1}


def test_instruments_from_the_store_and_config(
    web_config: Config, web_engine: Engine, seeded: Seeded
) -> None:
    gateway = Gateway(web_config, engine=web_engine)
    gateway.writer.start()
    gateway.connection_changed("bench-1", True, "peer 127.0.0.1:40002")
    gateway.writer.stop()  # finishes the queued write: the store now says bench-1 is connected
    with TestClient(create_app(web_config, web_engine), base_url=LOCAL) as client:
        sign_in(client)
        body = client.get("/api/instruments").json()
    assert [i["id"] for i in body] == ["afinion-1", "bench-1"]
    afinion, bench = body
    assert afinion["name"] == "Abbott Afinion 2" and afinion["location"] == "Laboratoriet"
    assert afinion["connected"] is False and afinion["detail"] == "not connected yet"
    assert afinion["messages"] == 4 and afinion["live"] is None
    assert afinion["last_message_at"] == (T0 + timedelta(minutes=9)).isoformat()
    assert bench["connected"] is True and bench["detail"] == "peer 127.0.0.1:40002"
    assert bench["last_message_at"] == SUMMER.isoformat()


def test_live_gateway_state_wins_over_the_store(live_client: TestClient) -> None:
    afinion, bench = live_client.get("/api/instruments").json()
    assert afinion["connected"] is True and afinion["detail"] == "peer 127.0.0.1:40001"
    assert afinion["live"] == {"messages": 6, "results": 5, "quarantined": 0}
    assert afinion["messages"] == 4  # the store's count stays the durable one
    assert bench["connected"] is False and bench["detail"] == "not connected yet"


def test_results_shape_and_masking(client: TestClient, seeded: Seeded) -> None:
    response = client.get("/api/results")
    no_full_ids(response.text)
    body = response.json()
    assert [r["id"] for r in body] == sorted((r["id"] for r in body), reverse=True)
    first = next(r for r in body if r["id"] == seeded.acknowledged)
    assert set(first) >= {
        "id",
        "instrument",
        "test",
        "nlk",
        "name",
        "value",
        "unit",
        "flags",
        "method",
        "state",
        "holds",
        "operator",
        "specimen",
        "patient_id",
        "performed_at",
        "received_at",
    }
    assert first["patient_id"] == "010100*****"
    assert (first["state"], first["nlk"], first["unit"]) == ("acknowledged", "NPU19748", "mg/L")
    assert first["received_at"] == T0.isoformat()
    invalid = next(r for r in body if r["id"] == seeded.invalid_patient)
    (hold,) = invalid["holds"]
    assert hold["reason"] == "invalid_patient_id" and hold["released"] is False
    assert "010100*****" in hold["detail"] and hold["release_role"] == "verifier"


def test_results_filters_and_limit(client: TestClient, seeded: Seeded) -> None:
    held = client.get("/api/results", params={"state": "held"}).json()
    assert {r["id"] for r in held} == {
        seeded.invalid_patient,
        seeded.missing_patient,
        seeded.unmapped,
    }
    bench = client.get("/api/results", params={"instrument": "bench-1"}).json()
    assert {r["instrument"] for r in bench} == {"bench-1"} and len(bench) == 3
    both = client.get("/api/results", params={"state": "held", "instrument": "bench-1"}).json()
    assert [r["id"] for r in both] == [seeded.missing_patient]
    assert len(client.get("/api/results", params={"limit": 2}).json()) == 2
    assert len(client.get("/api/results", params={"state": ""}).json()) == 7
    assert client.get("/api/results", params={"state": "bogus"}).status_code == 422
    assert client.get("/api/results", params={"limit": 0}).status_code == 422


def test_one_result_and_404(client: TestClient, seeded: Seeded) -> None:
    body = client.get(f"/api/results/{seeded.rejected}").json()
    assert body["state"] == "rejected" and body["patient_id"] == "150765*****"
    assert body["outbox"] == [
        {"id": 2, "control_id": f"CTRL{seeded.rejected:04d}", "state": "rejected", "ack_code": "AE"}
    ]
    missing = client.get("/api/results/9999")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "result 9999 not found"}
    assert client.get("/api/results/abc").status_code == 422
    assert client.get("/api/nothing-here").json() == {"detail": "Not Found"}


def test_outbox_shape_and_ack_text_masked(client: TestClient, seeded: Seeded) -> None:
    response = client.get("/api/outbox")
    no_full_ids(response.text)
    body = response.json()
    assert body["counts"] == {"acknowledged": 1, "pending": 1, "rejected": 1}
    assert body["oldest_waiting_at"] == (T0 + timedelta(minutes=10)).isoformat()
    newest, rejected, acked = body["messages"]
    assert (newest["state"], newest["attempts"], newest["acked_at"]) == ("pending", 0, None)
    assert (rejected["ack_code"], rejected["ack_text"]) == ("AE", "Unknown patient 150765*****")
    assert (acked["state"], acked["results"], acked["attempts"]) == ("acknowledged", 1, 1)
    assert len(client.get("/api/outbox", params={"limit": 1}).json()["messages"]) == 1


def test_quarantine_and_deviations_are_masked(client: TestClient) -> None:
    quarantine = client.get("/api/quarantine")
    no_full_ids(quarantine.text)
    (row,) = quarantine.json()
    assert (row["instrument"], row["field"], row["state"], row["protocol"]) == (
        "bench-1",
        "PID-3",
        "open",
        "hl7",
    )
    assert row["error"] == "PID-3: cannot read 010100*****^^^X" and row["bytes"] == 15
    assert client.get("/api/quarantine", params={"state": "replayed"}).json() == []
    assert client.get("/api/quarantine", params={"state": "nonsense"}).status_code == 422
    deviations = client.get("/api/deviations")
    no_full_ids(deviations.text)
    quarantined, deviation = deviations.json()  # newest first
    assert deviation["kind"] == "lis_rejected" and deviation["state"] == "open"
    assert deviation["detail"] == "Unknown patient 150765*****"
    assert deviation["responsible"] == "Dataansvarlig"
    assert (quarantined["kind"], quarantined["category"]) == ("quarantine", "equipment")
    assert quarantined["responsible"] == "Utstyrsansvarlig"
    assert [d["id"] for d in client.get("/api/deviations?kind=lis_rejected").json()] == [
        deviation["id"]
    ]


def test_scrub_masks_only_eleven_digit_runs() -> None:
    assert scrub(f"id {VALID_FNR}, x") == "id 010100*****, x"
    assert scrub("control 1234567890123 and 1234567890") == "control 1234567890123 and 1234567890"


def test_health(client: TestClient, live_client: TestClient) -> None:
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["site"] == "test-lab"
    assert body["gateway"] is None
    live = live_client.get("/api/health").json()
    assert live["gateway"]["lis"] == {
        "connected": False,
        "last_error": "",
        "sent": 0,
        "retries": 0,
        "orders_connected": False,
        "orders_detail": "not connected yet",
    }


def test_health_reports_a_missing_database(tmp_path: Path, web_config: Config) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}")  # a directory, not a database file
    try:
        with TestClient(create_app(web_config, engine), base_url=LOCAL) as client:
            response = client.get("/api/health")  # public: no session needed
    finally:
        engine.dispose()
    assert response.status_code == 503
    assert response.json()["status"] == "error"


def test_openapi_is_served_and_the_cdn_docs_are_off(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]) == {
        "/api/health",
        "/api/summary",
        "/api/instruments",
        "/api/results",
        "/api/results/{result_id}",
        "/api/outbox",
        "/api/quarantine",
        "/api/quarantine/{quarantine_id}",
        "/api/quarantine/{quarantine_id}/raw",
        "/api/deviations",
        "/api/orders",
        "/api/qc/status",  # issue 11
    }
    assert client.get("/redoc").status_code == 404
    docs = client.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "/api/results/{result_id}" in docs.text and "swagger" not in docs.text.lower()


# --- pages ---------------------------------------------------------------------------------


def visible_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_dashboard_in_norwegian_by_default(client: TestClient, seeded: Seeded) -> None:
    response = client.get("/")
    assert response.status_code == 200 and '<html lang="nb">' in response.text
    text = visible_text(response.text)
    for phrase in ("Instrumenter", "Siste prøvesvar", "Holdt tilbake", "Utboks"):
        assert phrase in text, phrase
    # the connection state in bokmål, not the stored technical detail ("not connected yet")
    assert "Venter på første tilkobling" in text and "not connected yet" not in text
    # why (stored detail, masked) and what to do (Norwegian action text) for each hold
    assert "Ugyldig pasient-ID" in text and "Mangler pasient-ID" in text
    assert ACTION_TEXT["nb"][HoldReason.INVALID_PATIENT_ID] in text
    assert ACTION_TEXT["nb"][HoldReason.MISSING_PATIENT_ID] in text
    assert "Pasient-ID 010100***** er ikke et gyldig fødselsnummer" in text
    english = visible_text(client.get("/", params={"lang": "en"}).text)
    assert "Patient ID 010100***** is not a valid fødselsnummer" in english
    # times are shown in Europe/Oslo: UTC+1 in January, UTC+2 in July
    assert "15.01.2026 10:30:00" in text and "01.07.2026 12:00:00" in text
    assert f'href="/results/{seeded.invalid_patient}"' in response.text
    no_full_ids(response.text)


def test_dashboard_counters(client: TestClient) -> None:
    html = client.get("/").text
    counters = dict(
        re.findall(r'data-counter="(\w+)"><a href="[^"]*"><span class="n">(\d+)</span>', html)
    )
    assert counters == {
        "received": "7",
        "held": "3",
        "queued": "2",
        "sent": "0",
        "acknowledged": "1",
        "rejected": "1",
        "quarantined": "1",
        "deviations": "2",
    }


def held_card(html: str) -> tuple[str, dict[str, str]]:
    """The held counter's value and the per-reason list (label -> count) of a dashboard."""
    counter = re.search(r'data-counter="held"><a href="[^"]*"><span class="n">(\d+)</span>', html)
    card = re.search(r'<section class="card" aria-labelledby="h-held">(.*?)</section>', html, re.S)
    assert counter is not None and card is not None
    reasons = re.findall(r'<li><span class="n">(\d+)</span>\s*([^<]+?)\s*</li>', card.group(1))
    return counter.group(1), {label: n for n, label in reasons}


def test_dashboard_explains_a_result_held_for_two_reasons(
    web_config: Config, web_engine: Engine
) -> None:
    """One held result with two reasons: the counter says 1, each reason says 1, and a note
    says why the reasons add up to more than the counter."""
    run_in_transaction(web_engine, lambda tx: register_instruments(tx, web_config), T0)
    ingest(
        web_engine,
        web_config,
        observation("afinion-1", "XYZ", "1", patient=BAD_FNR),  # bad ID and an unknown test
        now=T0,
        raw=b"m1",
    )
    with TestClient(create_app(web_config, web_engine), base_url=LOCAL) as client:
        sign_in(client)
        nb = client.get("/").text
        en = client.get("/", params={"lang": "en"}).text
    assert held_card(nb) == ("1", {"Ugyldig pasient-ID": "1", "Ukjent analysekode": "1"})
    assert held_card(en) == ("1", {"Invalid patient ID": "1", "Unmapped test code": "1"})
    assert i18n.text("nb", "counters.held_overlap") in visible_text(nb)
    assert i18n.text("en", "counters.held_overlap") in visible_text(en)
    assert "flere grunner" in i18n.text("nb", "counters.held_overlap")


def test_dashboard_has_no_overlap_note_when_the_reasons_add_up(client: TestClient) -> None:
    """The seeded store holds three results for one reason each: nothing to explain."""
    html = client.get("/").text
    assert held_card(html) == (
        "3",
        {"Ugyldig pasient-ID": "1", "Mangler pasient-ID": "1", "Ukjent analysekode": "1"},
    )
    assert 'data-note="held-overlap"' not in html
    assert i18n.text("nb", "counters.held_overlap") not in visible_text(html)


def test_dashboard_shows_live_connection(live_client: TestClient) -> None:
    html = live_client.get("/").text
    row = re.search(r'<tr data-instrument="afinion-1">(.*?)</tr>', html, re.S)
    assert row is not None and "Tilkoblet" in row.group(1) and "conn-on" in row.group(1)
    assert "peer 127.0.0.1:40001" in row.group(1)
    assert "Ikke tilkoblet" in visible_text(html)  # the LIS: the gateway has not connected it


def test_language_switch_sets_a_cookie(client: TestClient) -> None:
    english = client.get("/", params={"lang": "en"})
    assert english.cookies.get("trygg_lang") == "en"
    assert '<html lang="en">' in english.text
    text = visible_text(english.text)
    assert "Recent results" in text and "Instruments" in text and "Invalid patient ID" in text
    assert ACTION_TEXT["en"][HoldReason.INVALID_PATIENT_ID] in text
    assert "2026-01-15 10:30:00" in text
    # the cookie keeps English on the next pages
    assert "Results" in visible_text(client.get("/results").text)
    assert '<html lang="en">' in client.get("/outbox").text
    # an unknown language changes nothing; nb switches back
    assert '<html lang="en">' in client.get("/", params={"lang": "de"}).text
    assert '<html lang="nb">' in client.get("/", params={"lang": "nb"}).text
    assert '<html lang="nb">' in client.get("/").text


def test_site_language_sets_the_default(web_engine: Engine, seeded: Seeded) -> None:
    with TestClient(create_app(make_config(language="en"), web_engine), base_url=LOCAL) as client:
        sign_in(client)
        assert '<html lang="en">' in client.get("/").text
        assert '<html lang="nb">' in client.get("/", params={"lang": "nb"}).text


def test_action_falls_back_to_the_stored_text(
    web_config: Config, web_engine: Engine, seeded: Seeded
) -> None:
    """A reason with no ACTION_TEXT entry shows the action stored with the hold."""
    run_in_transaction(
        web_engine, lambda tx: hold_unbuildable(tx, unassigned_queued(tx, 1), "OBX-5: too long")
    )
    with web_engine.begin() as conn:
        conn.execute(
            holds.insert().values(
                result_id=seeded.summer,
                reason="reason_from_a_newer_version",
                detail="why it was held",
                action="Do the thing the newer version asks for",
                release_role="bioingenior",
                created_at=datetime.now(UTC),
            )
        )
    with TestClient(create_app(web_config, web_engine), base_url=LOCAL) as client:
        sign_in(client)
        text = visible_text(client.get(f"/results/{seeded.summer}").text)
    assert "LIS-melding kunne ikke lages" in text and "OBX-5: too long" in text
    assert "Meld fra til dataansvarlig" in text  # the known reason speaks Norwegian
    assert "Do the thing the newer version asks for" in text  # the unknown one falls back


def test_results_page_filters(client: TestClient, seeded: Seeded) -> None:
    html = client.get("/results", params={"state": "held", "instrument": "afinion-1"}).text
    ids = {int(i) for i in re.findall(r'data-result-id="(\d+)"', html)}
    assert ids == {seeded.invalid_patient, seeded.unmapped}
    assert '<option value="held" selected>' in html
    assert '<option value="afinion-1" selected>' in html
    every = client.get("/results", params={"state": "", "instrument": ""}).text
    assert len(re.findall(r'data-result-id="', every)) == 7
    bad = client.get("/results", params={"state": "bogus"})
    assert bad.status_code == 422 and "Ugyldig forespørsel" in bad.text


def test_result_page(client: TestClient, seeded: Seeded) -> None:
    text = visible_text(client.get(f"/results/{seeded.rejected}").text)
    assert f"Prøvesvar nr. {seeded.rejected}" in text
    assert "150765*****" in text and "NPU27300" in text and "Målt" in text
    assert f"CTRL{seeded.rejected:04d}" in text and "Avvist" in text
    assert "Ingen tilbakeholdelser." in text


def test_unknown_pages_are_404_pages(client: TestClient) -> None:
    missing = client.get("/results/9999")
    assert missing.status_code == 404 and "Prøvesvar nr. 9999 finnes ikke." in missing.text
    nowhere = client.get("/no-such-page", params={"lang": "en"})
    assert nowhere.status_code == 404 and "Page not found." in nowhere.text
    assert nowhere.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
@pytest.mark.parametrize("path", [*PAGES, "/results/2"])
def test_every_page_renders_safely(client: TestClient, path: str, lang: str) -> None:
    response = client.get(path, params={"lang": lang})
    assert response.status_code == 200
    assert f'<html lang="{lang}">' in response.text
    no_full_ids(response.text)
    # no external assets: every src and href stays on this origin
    assert not re.search(r'(?:src|href)="(?:https?:)?//', response.text)
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert response.headers["cache-control"] == "no-store"
    # no untranslated keys leak into the page
    groups = {key.split(".")[0] for key in i18n.TEXT["en"]}
    leaked = [g for g in groups if re.search(rf">\s*{g}\.[a-z_]+", response.text)]
    assert not leaked


def test_static_assets_are_local(client: TestClient) -> None:
    for name in ("trygg.css", "refresh.js", "favicon.svg"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and "http" not in response.text.replace(
            "http://www.w3.org/2000/svg", ""
        )


# --- i18n ----------------------------------------------------------------------------------


def test_both_languages_have_the_same_keys() -> None:
    assert set(i18n.TEXT["nb"]) == set(i18n.TEXT["en"])


def test_every_key_used_exists() -> None:
    used = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_.]+)["']\s*[,)]""", template.read_text()))
    used |= {item.key for item in NAV}
    used |= {f"counter.{k}" for k in ("received", "held", "queued", "sent", "acknowledged")}
    used |= {f"counter.{k}" for k in ("rejected", "quarantined", "deviations")}
    used |= {f"state.{s.value}" for s in State}
    used |= {f"reason.{r.value}" for r in HoldReason}
    used |= {f"method.{m.value}" for m in Method}
    used |= {f"lang.{code}" for code in i18n.LANGUAGES}
    used |= {"result.status_F", "result.status_C"}
    used |= {f"outbox_state.{s}" for s in ("pending", "sent", "acknowledged", "rejected")}
    used |= {f"quarantine_state.{s}" for s in ("open", "replayed", "discarded")}
    assert used - set(i18n.TEXT["nb"]) == set()


def test_labels_and_fallbacks() -> None:
    assert i18n.label("nb", "state", "held") == "Holdt tilbake"
    assert i18n.label("en", "state", "held") == "Held"
    assert i18n.label("nb", "reason", "some_future_reason") == "some_future_reason"
    assert i18n.label("nb", "role", "Dataansvarlig") == "Dataansvarlig"
    assert i18n.action_text("nb", "some_future_reason", "stored") == "stored"
    assert i18n.choose_language(None, None, "en") == "en"
    assert i18n.choose_language("xx", "en", "nb") == "en"
    assert i18n.choose_language("nb", "en", "en") == "nb"


def test_new_result_shows_after_a_reload(
    client: TestClient, web_engine: Engine, web_config: Config
) -> None:
    """The page reads the store on every request (what the auto-refresh relies on)."""
    new_id = ingest(
        web_engine,
        web_config,
        observation("afinion-1", "CRP", "77", specimen="S9"),
        now=SUMMER + timedelta(hours=1),
        raw=b"m9",
    )
    assert f'data-result-id="{new_id}"' in client.get("/").text


# --- served by the running gateway ---------------------------------------------------------


async def get_json(client: httpx.AsyncClient, path: str, timeout_s: float = 10.0) -> Any:
    """GET ``path`` until the server answers (it starts inside the gateway's TaskGroup)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            response = await client.get(path)
            response.raise_for_status()
            return response.json()
        except httpx.TransportError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_live_state_from_the_running_gateway(tmp_path: Path) -> None:
    """The app beside a running gateway (same loop): an analyser connecting shows up live.

    The web server is started here rather than by ``Gateway.run`` so that it can be shut down
    cleanly (see the report on ``Gateway._serve_web``).
    """
    instrument_port = free_port()
    config = parse_config(
        {
            "site": {"name": "gw-lab"},
            "store": {"url": f"sqlite:///{tmp_path / 'gw.sqlite3'}"},
            "instruments": [
                {
                    "id": "afinion-1",
                    "driver": "hl7_mllp",
                    "url": f"tcp-listen://127.0.0.1:{instrument_port}",
                }
            ],
        }
    )
    gateway = Gateway(config)
    gateway_task = asyncio.create_task(gateway.run(web=False))
    await asyncio.wait_for(gateway.ready.wait(), 10)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    app = create_app(config, gateway.engine, gateway=gateway)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    server_task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        signed = open_session(gateway.engine)
        async with httpx.AsyncClient(base_url=base_url, cookies=signed.cookies) as client:
            health = await get_json(client, "/api/health")
            assert health["status"] == "ok" and health["gateway"]["lis"]["connected"] is False
            (instrument,) = await get_json(client, "/api/instruments")
            assert instrument["connected"] is False and instrument["live"] is not None
            _, analyser = await asyncio.open_connection("127.0.0.1", instrument_port)
            try:
                for _ in range(200):
                    (instrument,) = await get_json(client, "/api/instruments")
                    if instrument["connected"]:
                        break
                    await asyncio.sleep(0.05)
                assert instrument["connected"] is True
                assert instrument["detail"].startswith("127.0.0.1")
                page = await client.get("/")
                row = re.search(r'<tr data-instrument="afinion-1">(.*?)</tr>', page.text, re.S)
                assert row is not None and "conn-on" in row.group(1)
            finally:
                analyser.close()
                await analyser.wait_closed()
    finally:
        server.should_exit = True
        await server_task
        sock.close()
        gateway_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gateway_task
