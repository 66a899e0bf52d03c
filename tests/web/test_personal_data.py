"""Personal data stays masked on every screen (issue 9 item 5): pages, /api, CLI.

A national ID inside an OBX free-text value is masked wherever a person reads it; an 11-digit
lot number that fails the mod-11 checks is not. A quarantined message whose PID carries a name
and a national ID: the stored error text has neither, nor do the list and detail pages; the raw
bytes are one explicit, logged action away (web and CLI), which leaves an audit row.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from drivers.analysers import generic_hl7
from drivers.model import InboundMessage, Observation
from gateway.app import register_instruments
from gateway.cli import app as cli
from gateway.config import Config, load_config
from gateway.ingest import store_message
from gateway.rules import context_from_config
from gateway.store.engine import make_engine, upgrade
from gateway.store.tables import audit, quarantine, results
from gateway.store.writer import run_in_transaction
from gateway.web.app import create_app
from tests.web.conftest import sign_in

with warnings.catch_warnings():
    # Starlette 1.10 prefers httpx2 for its TestClient; httpx (our test extra) still works.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

LOCAL = "http://127.0.0.1:8470"
NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
FNR = "15037212382"  # a valid fødselsnummer
DNR = "55037212376"  # a valid D-number
LOT = "15076500566"  # 11 digits, shaped like one, but check digit 2 fails: a lot number
FAMILY, GIVEN = "Nordmann", "Ingeborg"
FREE_TEXT = f"Prøven tilhører {FNR}, se også D-nr {DNR[:6]} {DNR[6:]}"
LOT_TEXT = f"Reagens lot {LOT}"
# the PID's field separator is broken (# for |): the segment does not read, the message is
# quarantined, and the error must name the place, not quote the name or the number
BROKEN_PID = (
    "MSH|^~\\&|BENCH|SN1|TRYGG|LAB|20261121093000+0000||ORU^R01^ORU_R01|C9|P|2.5.1\r"
    f"PID#1##{FNR}^^^NO-FNR||{FAMILY}^{GIVEN}\r"
    "OBR|1||SPEC9|CRP^CRP^L|||20261121093000+0000\r"
    "OBX|1|NM|CRP^CRP^L||17|mg/L|||||F\r"
).encode()

runner = CliRunner()


def leaks(text: str) -> list[str]:
    return [secret for secret in (FNR, DNR, FAMILY, GIVEN) if secret in text]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f"""
[site]
name = "pii-test"
language = "nb"
[store]
url = "sqlite:///{tmp_path / "pii.sqlite3"}"
[web]
listen = "127.0.0.1:8470"
[[instruments]]
id = "bench-1"
driver = "hl7_mllp"
url = "tcp-listen://127.0.0.1:5998"
[[tests]]
code = "CRP"
nlk = "NPU19748"
[[tests]]
code = "NOTE"
nlk = "NPU00000"
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def store(site: Path) -> Iterator[tuple[Config, Engine, dict[str, int]]]:
    config = load_config(site)
    engine = make_engine(config.store.url)
    upgrade(engine)
    context = context_from_config(config)
    run_in_transaction(engine, lambda tx: register_instruments(tx, config), NOW)

    def obs(code: str, value: str, specimen: str) -> Observation:
        return Observation(
            "bench-1",
            code,
            value,
            value_type="TX",
            patient_id=FNR,
            specimen_id=specimen,
            performed_at=NOW,
        )

    free = InboundMessage(
        "bench-1", "hl7", b"m1", NOW, observations=(obs("NOTE", FREE_TEXT, "S1"),)
    )
    lot = InboundMessage("bench-1", "hl7", b"m2", NOW, observations=(obs("NOTE", LOT_TEXT, "S2"),))
    refused = generic_hl7.decode("bench-1", BROKEN_PID, NOW)
    assert refused.error is not None  # the PID does not read: the message goes to quarantine
    for message in (free, lot, refused):
        run_in_transaction(engine, lambda tx, m=message: store_message(tx, m, context), NOW)
    with engine.connect() as conn:
        by_value = {
            row.value: row.id for row in conn.execute(select(results.c.id, results.c.value))
        }
        (quarantined,) = conn.execute(select(quarantine.c.id)).scalars()
    ids = {"free": by_value[FREE_TEXT], "lot": by_value[LOT_TEXT], "quarantine": quarantined}
    yield config, engine, ids
    engine.dispose()


@pytest.fixture
def client(store: tuple[Config, Engine, dict[str, int]]) -> Iterator[TestClient]:
    config, engine, _ = store
    with TestClient(create_app(config, engine), base_url=LOCAL) as test_client:
        sign_in(test_client)
        yield test_client


def raw_views(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit.c.actor, audit.c.entity, audit.c.entity_id).where(
                audit.c.action == "quarantine.raw_viewed"
            )
        ).all()
    return [tuple(row) for row in rows]


# --- a national ID in an OBX free-text value ---------------------------------------------------


def test_free_text_national_id_is_masked_on_the_pages(
    client: TestClient, store: tuple[Config, Engine, dict[str, int]]
) -> None:
    ids = store[2]
    for path in ("/", "/results", f"/results/{ids['free']}"):
        html = client.get(path).text
        assert leaks(html) == [], path
    detail = client.get(f"/results/{ids['free']}").text
    assert f"{FNR[:6]}*****" in detail and f"{DNR[:6]} *****" in detail


def test_free_text_national_id_is_masked_in_the_api(
    client: TestClient, store: tuple[Config, Engine, dict[str, int]]
) -> None:
    ids = store[2]
    listed = {r["id"]: r for r in client.get("/api/results").json()}
    one = client.get(f"/api/results/{ids['free']}").json()
    for row in (listed[ids["free"]], one):
        assert row["value"] == f"Prøven tilhører {FNR[:6]}*****, se også D-nr {DNR[:6]} *****"
    assert leaks(client.get("/api/results").text) == []


def test_a_lot_number_failing_mod_11_is_not_masked(
    client: TestClient, store: tuple[Config, Engine, dict[str, int]]
) -> None:
    ids = store[2]
    assert client.get(f"/api/results/{ids['lot']}").json()["value"] == LOT_TEXT
    assert LOT in client.get(f"/results/{ids['lot']}").text


def test_free_text_national_id_is_masked_in_cli_output(
    site: Path, store: tuple[Config, Engine, dict[str, int]]
) -> None:
    ids = store[2]
    wide = {"COLUMNS": "300"}
    table = runner.invoke(cli, ["results", "list", "--config", str(site)], env=wide)
    listed = runner.invoke(cli, ["results", "list", "--config", str(site), "--json"])
    shown = runner.invoke(cli, ["results", "show", str(ids["free"]), "--config", str(site)])
    for result in (table, listed, shown):
        assert result.exit_code == 0, result.output
        assert leaks(result.stdout) == [], result.stdout
    assert f"{FNR[:6]}*****" in json.loads(shown.stdout)["value"]
    assert LOT in listed.stdout  # not a national ID: shown as sent


# --- a quarantined message whose PID holds a name and a national ID ----------------------------


def test_the_stored_error_names_the_field_not_the_patient(
    store: tuple[Config, Engine, dict[str, int]],
) -> None:
    _, engine, _ = store
    with engine.connect() as conn:
        error, field = conn.execute(select(quarantine.c.error, quarantine.c.field)).one()
        reasons = list(conn.execute(select(audit.c.reason)).scalars())
    assert leaks(error) == [] and "PID" in error, error
    assert field == "segment[2]"
    assert all(leaks(reason) == [] for reason in reasons)  # the audit row repeats the error


def test_quarantine_list_detail_and_api_show_no_patient_data(
    client: TestClient, store: tuple[Config, Engine, dict[str, int]]
) -> None:
    qid = store[2]["quarantine"]
    for path in (
        "/quarantine",
        f"/quarantine/{qid}",
        "/api/quarantine",
        f"/api/quarantine/{qid}",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert leaks(response.text) == [], path
    detail = client.get(f"/quarantine/{qid}").text
    assert f'href="/quarantine/{qid}/raw"' in detail and "Vis rå melding" in detail
    assert raw_views(store[1]) == []  # looking at the entry is not looking at the bytes


def test_the_raw_action_shows_the_bytes_and_leaves_an_audit_row(
    client: TestClient, site: Path, store: tuple[Config, Engine, dict[str, int]]
) -> None:
    _, engine, ids = store
    qid = ids["quarantine"]
    page = client.get(f"/quarantine/{qid}/raw")
    assert page.status_code == 200 and FAMILY in page.text and FNR in page.text
    assert raw_views(engine) == [("web:tester", "quarantine", str(qid))]
    body = client.get(f"/api/quarantine/{qid}/raw").json()
    assert FAMILY in body["text"] and body["id"] == qid
    assert len(raw_views(engine)) == 2
    assert client.get("/quarantine/999/raw").status_code == 404
    assert client.get("/api/quarantine/999/raw").status_code == 404
    assert len(raw_views(engine)) == 2  # nothing shown, nothing logged
    assert runner.invoke(cli, ["audit", "verify", "--config", str(site)]).exit_code == 0


def test_cli_quarantine_shows_raw_only_when_asked_and_logs_it(
    site: Path, store: tuple[Config, Engine, dict[str, int]]
) -> None:
    _, engine, ids = store
    qid = str(ids["quarantine"])
    listed = runner.invoke(cli, ["quarantine", "list", "--config", str(site), "--json"])
    table = runner.invoke(
        cli, ["quarantine", "list", "--config", str(site)], env={"COLUMNS": "300"}
    )
    shown = runner.invoke(cli, ["quarantine", "show", qid, "--config", str(site)])
    for result in (listed, table, shown):
        assert result.exit_code == 0, result.output
        assert leaks(result.stdout) == [], result.stdout
    assert "--raw" in shown.stdout and raw_views(engine) == []
    raw = runner.invoke(
        cli, ["quarantine", "show", qid, "--raw", "--by", "kari", "--config", str(site)]
    )
    assert raw.exit_code == 0, raw.output
    dumped = b"".join(
        bytes.fromhex("".join(line.split("|")[0].split()[1:]))
        for line in raw.stdout.splitlines()
        if line.startswith("0000")
    )
    assert dumped == BROKEN_PID  # the hexdump: the bytes as received, name and all
    assert raw_views(engine) == [("cli:kari", "quarantine", qid)]
