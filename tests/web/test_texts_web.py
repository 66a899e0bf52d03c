"""Bokmål screens speak bokmål: quarantine and held results, technical detail one click away.

The store is filled through the real paths: refused messages from the real drivers go through
ingest into quarantine, held results come from the real rules, and rows in the format from
before migration 0004 are written by SQL into a store migrated to 0003 and then upgraded.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text

from drivers.analysers import generic_hl7
from drivers.analysers.astm_host import INCOMPLETE
from drivers.model import InboundMessage
from gateway.config import Config
from gateway.ingest import store_message
from gateway.lis.forwarder import hold_unbuildable, unassigned_queued
from gateway.rules import context_from_config
from gateway.store import queries
from gateway.store.engine import make_engine, upgrade
from gateway.store.tables import holds, quarantine, raw_messages
from gateway.store.writer import run_in_transaction
from gateway.web.app import create_app
from tests.web.conftest import LOCAL, T0, VALID_FNR, Seeded, ingest, observation, sign_in

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

#: English developer text that a bokmål screen must not show outside a <details> element
ENGLISH = (
    "is not a result message",
    "parser",
    "must start with",
    "incomplete message",
    "connection closed",
    "not connected yet",
    "Patient ID",
    "is not a valid",
    "check digit",
    "[[tests]]",
    "mapping",
    "could not be built",
    "bytes",
    "b'",
    "Error",
)
ORU_R99 = (
    "MSH|^~\\&|BENCH|SN1|TRYGG|LAB|20260115093000+0000||ORU^R99|C7|P|2.5.1\r"
    f"PID|1||{VALID_FNR}^^^^FNR||Nordmann^Kari\r"
    "OBX|1|NM|CRP^CRP||12|mg/L|||||F\r"
).encode()


class _Visible(HTMLParser):
    """The page's text outside <details> (what shows before a click) and inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.shown: list[str] = []
        self.hidden: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.depth += tag == "details"

    def handle_endtag(self, tag: str) -> None:
        self.depth -= tag == "details"

    def handle_data(self, data: str) -> None:
        (self.hidden if self.depth else self.shown).append(data)


def split_text(html: str) -> tuple[str, str]:
    """(text shown at once, text behind a click); the <summary> counts as hidden."""
    parser = _Visible()
    parser.feed(re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S))
    return (
        re.sub(r"\s+", " ", " ".join(parser.shown)),
        re.sub(r"\s+", " ", " ".join(parser.hidden)),
    )


def assert_bokmal(shown: str) -> None:
    leaked = [phrase for phrase in ENGLISH if phrase in shown]
    assert leaked == [], leaked


def refuse(engine: Engine, config: Config, message: InboundMessage) -> None:
    run_in_transaction(
        engine, lambda tx: store_message(tx, message, context_from_config(config)), T0
    )


def add_refusals(engine: Engine, config: Config) -> None:
    """Real refusals from the drivers into quarantine, and an unbuildable LIS message held."""
    refuse(engine, config, generic_hl7.decode("bench-1", ORU_R99, T0))
    refuse(engine, config, generic_hl7.decode("bench-1", b"HELLO|x\r", T0))
    incomplete = InboundMessage(
        "afinion-1", "astm", b"H|\\^&\rP|1\r", T0, error=INCOMPLETE, error_field="L"
    )
    refuse(engine, config, incomplete)
    run_in_transaction(
        engine,
        lambda tx: hold_unbuildable(
            tx, unassigned_queued(tx, 1), "OBX-5: value too long (bytes: b'x')", field="OBX-5"
        ),
    )


@pytest.fixture
def refused(web_engine: Engine, web_config: Config, seeded: Seeded) -> Seeded:
    add_refusals(web_engine, web_config)
    return seeded


@pytest.fixture
def client(web_config: Config, web_engine: Engine, refused: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(web_config, web_engine), base_url=LOCAL) as test_client:
        sign_in(test_client)
        yield test_client


def test_quarantine_page_in_bokmal(client: TestClient) -> None:
    html = client.get("/quarantine").text
    shown, hidden = split_text(html)
    assert_bokmal(shown)
    assert "Meldingen er ikke et prøvesvar Trygg kan lese (meldingstype ORU^R99)." in shown
    assert "Meldingen er ikke bygget opp slik protokollen krever." in shown
    assert "Meldingen er ufullstendig" in shown
    assert "Pasient-ID-en i meldingen kan ikke leses." in shown  # the seeded PID-3 row
    assert "MSH-9" in shown and "posttype" not in shown
    # the technical detail is one click away, without the quoted bytes (patient data)
    assert "Teknisk detalj" in hidden
    assert "MSH-9: ORU^R99 is not a result message this parser reads" in hidden
    assert INCOMPLETE in hidden
    assert VALID_FNR not in html and "Nordmann" not in html and "(bytes:" not in html


def test_quarantine_page_in_english(client: TestClient) -> None:
    shown, _ = split_text(client.get("/quarantine", params={"lang": "en"}).text)
    assert "The message is not a result message Trygg reads (message type ORU^R99)." in shown
    assert "Meldingen" not in shown


def test_quarantine_api_keeps_its_keys_and_adds_the_reason(client: TestClient) -> None:
    rows = {row["field"]: row for row in client.get("/api/quarantine").json()}
    r99 = rows["MSH-9"]
    assert r99["reason"] == "not_a_result_message"
    assert r99["params"] == {"field": "MSH-9", "message_type": "ORU^R99"}
    assert r99["reason_text"].startswith("The message is not a result message")
    assert r99["error"].startswith("MSH-9: ORU^R99 is not a result message")  # stored as is


def test_held_result_pages_in_bokmal(client: TestClient, refused: Seeded) -> None:
    for result_id in (refused.invalid_patient, refused.unmapped, refused.missing_patient):
        html = client.get(f"/results/{result_id}").text
        shown, _ = split_text(html)
        assert_bokmal(shown)
        assert "Hvorfor" in shown and "Hva gjør du" in shown
    invalid, _ = split_text(client.get(f"/results/{refused.invalid_patient}").text)
    assert "Pasient-ID 010100***** er ikke et gyldig fødselsnummer: kontrollsiffer 2 er feil." in (
        invalid
    )
    unmapped, _ = split_text(client.get(f"/results/{refused.unmapped}").text)
    assert "analysekoden «XYZ»" in unmapped and "legg testen inn i oppsettet" in unmapped.lower()


def test_unbuildable_hold_shows_the_error_behind_a_click(
    client: TestClient, web_engine: Engine
) -> None:
    with web_engine.connect() as conn:
        held = conn.execute(
            select(holds.c.result_id).where(holds.c.reason == "lis_message_invalid")
        ).scalar_one()
    shown, hidden = split_text(client.get(f"/results/{held}").text)
    assert_bokmal(shown)
    assert "Meldingen til LIS kunne ikke lages. Feltet med feil: OBX-5." in shown
    assert "Meld fra til dataansvarlig" in shown
    assert "OBX-5: value too long" in hidden and "(bytes:" not in hidden


def test_dashboard_in_bokmal(client: TestClient) -> None:
    shown, _ = split_text(client.get("/").text)
    assert_bokmal(shown)
    assert "Venter på første tilkobling" in shown


def test_error_page_keeps_the_framework_reason_behind_a_click(client: TestClient) -> None:
    response = client.post("/results")
    assert response.status_code == 405
    shown, hidden = split_text(response.text)
    assert "Forespørselen kunne ikke besvares." in shown and "Method Not Allowed" not in shown
    assert "Method Not Allowed" in hidden


# --- rows from before migration 0004 ----------------------------------------------------------


@pytest.fixture
def old_store(tmp_path: Path) -> Iterator[Engine]:
    """A store at 0003 with rows in the old format (texts, no codes), then upgraded to head."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    upgrade(engine, "0003")
    moment = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
    now = moment.isoformat(" ")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO raw_messages (id, instrument_id, protocol, received_at, raw, digest,"
                " control_id, outcome, n_observations)"
                " VALUES (1, 'afinion-1', 'hl7', :now, :raw, 'd1', 'C1', 'quarantined', 0)"
            ),
            {"now": now, "raw": ORU_R99},
        )
        conn.execute(
            text(
                "INSERT INTO quarantine (id, raw_message_id, instrument_id, received_at, error,"
                " field, state) VALUES (1, 1, 'afinion-1', :now, :error, 'MSH-9', 'open')"
            ),
            {"now": now, "error": "MSH-9: ORU^R99 is not a result message this parser reads"},
        )
        # the columns results had at 0003 (0007 added processing_id)
        conn.execute(
            text(
                "INSERT INTO results (id, instrument_id, test_code, nlk_code, test_name, value,"
                " value_type, unit, reference_range, abnormal_flags, method, operator_id,"
                " specimen_id, patient_id, result_status, comment, instrument_serial, state,"
                " fingerprint, created_at, updated_at) VALUES (1, 'afinion-1', 'XYZ', '', '',"
                " '1.5', 'NM', '', '', '', 'measured', '', '', '', 'F', '', '', 'held', 'f1',"
                " :now, :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO holds (result_id, reason, detail, detail_nb, action, release_role,"
                " created_at) VALUES (1, 'unmapped_test', :detail, :detail_nb, :action,"
                " 'kvalitetsansvarlig', :now)"
            ),
            {
                "now": now,
                "detail": "Instrument 'afinion-1' sent test code 'XYZ', which has no mapping",
                "detail_nb": "Instrumentet 'afinion-1' sendte analysekoden 'XYZ' (gammel rad)",
                "action": "Add a mapping",
            },
        )
    upgrade(engine)
    yield engine
    engine.dispose()


def test_old_rows_still_render(old_store: Engine, web_config: Config) -> None:
    with old_store.connect() as conn:
        assert conn.execute(select(holds.c.params)).scalar_one() is None
        assert conn.execute(select(quarantine.c.reason)).scalar_one() == ""
        (hold,) = queries.get_result(conn, 1)["holds"]  # type: ignore[index]
        (row,) = queries.list_quarantine(conn)
    assert hold["params"] is None and hold["detail"].startswith("Instrument 'afinion-1'")
    assert row["reason"] == "not_a_result_message"  # derived on reading
    with TestClient(create_app(web_config, old_store), base_url=LOCAL) as client:
        sign_in(client)
        result, _ = split_text(client.get("/results/1").text)
        quarantined, _ = split_text(client.get("/quarantine").text)
    assert "Instrumentet 'afinion-1' sendte analysekoden 'XYZ' (gammel rad)" in result
    assert "Legg testen inn i oppsettet" in result  # what to do comes from the catalogue
    assert "Meldingen er ikke et prøvesvar Trygg kan lese" in quarantined


def test_new_rows_store_codes_not_texts(web_engine: Engine, web_config: Config) -> None:
    held = ingest(
        web_engine,
        web_config,
        observation("afinion-1", "GLU", "5.1", patient=""),
        now=T0 + timedelta(hours=1),
        raw=b"new-row",
    )
    with web_engine.connect() as conn:
        rows = conn.execute(
            select(
                holds.c.reason, holds.c.params, holds.c.detail, holds.c.detail_nb, holds.c.action
            )
            .where(holds.c.result_id == held)
            .order_by(holds.c.id)
        ).all()
        audit = conn.execute(
            text("SELECT reason FROM audit WHERE action = 'result.held' ORDER BY id DESC LIMIT 1")
        ).scalar_one()
    assert [(r.reason, r.params) for r in rows] == [
        ("missing_patient_id", '{"instrument":"afinion-1"}'),
        ("unmapped_test", '{"instrument":"afinion-1","code":"GLU"}'),
    ]
    assert all(r.detail == r.detail_nb == r.action == "" for r in rows)
    assert audit.startswith("missing_patient_id: The result from afinion-1 has no patient ID.")
    refuse(web_engine, web_config, generic_hl7.decode("bench-1", ORU_R99, T0))
    with web_engine.connect() as conn:
        stored = conn.execute(
            select(quarantine.c.reason, quarantine.c.params)
            .join(raw_messages, raw_messages.c.id == quarantine.c.raw_message_id)
            .order_by(quarantine.c.id.desc())
        ).first()
    assert stored is not None
    assert tuple(stored) == (
        "not_a_result_message",
        '{"field":"MSH-9","message_type":"ORU^R99"}',
    )
