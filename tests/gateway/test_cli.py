"""The `trygg` commands against a real SQLite store filled through the real ingest path."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from drivers.model import InboundMessage, Observation
from gateway.cli import app
from gateway.config import LisConfig, load_config
from gateway.ingest import store_message
from gateway.lis.oru import build_oru
from gateway.lis.outbox import enqueue, unassigned_queued
from gateway.people.roles import Role
from gateway.rules import context_from_config
from gateway.store.engine import make_engine, upgrade
from gateway.store.people import upsert_person
from gateway.store.signin import set_password
from gateway.store.tables import audit
from gateway.store.writer import Tx, run_in_transaction

VALID = "01010012356"
NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
GOOD_HL7 = (
    "MSH|^~\\&|BENCH|SN1|TRYGG|LAB|20261121093000+0000||ORU^R01^ORU_R01|C1|P|2.5.1\r"
    f"PID|1||{VALID}^^^^NNNOR\rOBR|1||SPEC9|CRP^CRP^L|||20261121093000+0000\r"
    "OBX|1|NM|CRP^CRP^L||17|mg/L|||||F\r"
).encode()

runner = CliRunner()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    config = tmp_path / "site.toml"
    config.write_text(
        f"""
[site]
name = "cli-test"
[store]
url = "sqlite:///{tmp_path / "cli.sqlite3"}"
[[instruments]]
id = "bench-1"
driver = "hl7_mllp"
url = "tcp-listen://127.0.0.1:5999"
[[tests]]
code = "CRP"
nlk = "NPU19748"
""",
        encoding="utf-8",
    )
    cfg = load_config(config)
    engine = make_engine(cfg.store.url)
    upgrade(engine)
    context = context_from_config(cfg)
    held = Observation(
        "bench-1", "CRP", "12", patient_id=VALID[:-1] + "0", specimen_id="S1", performed_at=NOW
    )
    fine = Observation("bench-1", "CRP", "9", patient_id=VALID, specimen_id="S2", performed_at=NOW)
    run_in_transaction(
        engine,
        lambda tx: store_message(
            tx, InboundMessage("bench-1", "hl7", b"m1", NOW, observations=(held, fine)), context
        ),
    )
    # a message that failed with an older driver but decodes now: replay must ingest it
    run_in_transaction(
        engine,
        lambda tx: store_message(
            tx,
            InboundMessage("bench-1", "hl7", GOOD_HL7, NOW, error="old bug", error_field="OBX-5"),
            context,
        ),
    )
    run_in_transaction(
        engine,
        lambda tx: store_message(
            tx,
            InboundMessage(
                "bench-1", "hl7", b"\x00garbage", NOW, error="MSH: missing", error_field="MSH"
            ),
            context,
        ),
    )
    engine.dispose()
    return config


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


def test_drivers_json_lists_the_registry() -> None:
    code, out = invoke("drivers", "--json")
    assert code == 0
    drivers = json.loads(out)
    hl7 = next(d for d in drivers if d["key"] == "hl7_mllp")
    assert set(hl7) == {"key", "protocol", "roles", "description", "qc"} and hl7["roles"]
    # every driver says how it tells a control run from a patient sample
    assert all(row["qc"] for row in drivers)


def test_check_config_good_and_bad(site: Path, tmp_path: Path) -> None:
    assert invoke("check-config", "--config", str(site))[0] == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('[site]\nname = "x"\n[lis]\nurl = "http://lis"\n', encoding="utf-8")
    result = runner.invoke(app, ["check-config", "--config", str(bad)])
    assert result.exit_code == 2
    assert "lis.url" in result.stderr and "tcp://host:port" in result.stderr


def test_results_list_masks_patient_ids_unless_asked(site: Path) -> None:
    code, out = invoke("results", "list", "--config", str(site), "--json")
    assert code == 0
    rows = json.loads(out)
    assert {r["state"] for r in rows} == {"held", "queued"}
    assert all(
        set(r)
        >= {"id", "instrument", "test", "value", "unit", "state", "holds", "operator", "patient_id"}
        for r in rows
    )
    assert all(r["patient_id"].endswith("*****") for r in rows)
    held = next(r for r in rows if r["state"] == "held")
    assert held["holds"][0]["reason"] == "invalid_patient_id"
    _, shown = invoke("results", "list", "--config", str(site), "--json", "--show-patient-id")
    assert VALID in {r["patient_id"] for r in json.loads(shown)}


def test_an_invalid_patient_id_is_corrected_not_released(site: Path) -> None:
    """The issue's bug: `release 40 --by kari` sent an invalid fødselsnummer to the LIS."""
    cfg = load_config(site)
    engine = make_engine(cfg.store.url)

    def seed(tx: Tx) -> None:
        upsert_person(tx, "kari", name="Kari", roles=[Role.VERIFIER], actor="test")
        set_password(tx, "kari", "correct horse battery staple", actor="test")

    run_in_transaction(engine, seed)
    engine.dispose()
    env = {"TRYGG_PASSWORD": "correct horse battery staple"}
    rows = json.loads(invoke("results", "list", "--config", str(site), "--json")[1])
    held = str(next(r for r in rows if r["state"] == "held")["id"])
    release = ["results", "release", held, "--config", str(site), "--by", "kari"]
    refused = runner.invoke(app, [*release, "--note", "checked the label"], env=env)
    assert refused.exit_code == 1 and "never released unchanged" in refused.stderr
    correct = ["results", "correct", held, "--config", str(site), "--user", "kari"]
    corrected = runner.invoke(
        app, [*correct, "--field", "patient_id", "--value", VALID, "--reason", "label"], env=env
    )
    assert corrected.exit_code == 0, corrected.output
    shown = json.loads(invoke("results", "show", held, "--config", str(site))[1])
    assert shown["state"] == "queued" and shown["holds"][0]["released"]
    assert shown["corrections"][0]["old_value"] == "010100*****"
    assert [s["meaning"] for s in shown["signatures"]] == ["correct"]
    again = runner.invoke(app, [*release, "--note", "again"], env=env)
    assert again.exit_code == 1 and "is not held" in again.stderr
    assert invoke("audit", "verify", "--config", str(site))[0] == 0


def test_outbox_status_json_is_an_array_of_messages(site: Path) -> None:
    cfg = load_config(site)
    engine = make_engine(cfg.store.url)
    lis = LisConfig(url="tcp://127.0.0.1:2575")

    def pack(tx: Tx) -> int:
        queued = unassigned_queued(tx, 10)
        text = build_oru(queued, control_id="CTRL0001", now=NOW, lis=lis)
        return enqueue(tx, [("CTRL0001", text, queued)])

    assert run_in_transaction(engine, pack) == 1
    engine.dispose()
    code, out = invoke("outbox", "status", "--config", str(site), "--json")
    assert code == 0
    messages = json.loads(out)
    assert isinstance(messages, list) and len(messages) == 1
    message = messages[0]
    assert (message["control_id"], message["state"], message["results"]) == (
        "CTRL0001",
        "pending",
        1,
    )
    assert len(message["result_ids"]) == 1 and message["attempts"] == 0
    code, out = invoke("outbox", "status", "--config", str(site), "--json", "--state", "sent")
    assert json.loads(out) == []


def test_quarantine_list_show_and_replay(site: Path) -> None:
    rows = json.loads(invoke("quarantine", "list", "--config", str(site), "--json")[1])
    assert [r["field"] for r in rows] == ["MSH", "OBX-5"]
    garbage, fixed = rows
    code, out = invoke("quarantine", "show", str(garbage["id"]), "--config", str(site))
    assert code == 0 and "00 67 61 72 62 61 67 65" not in out and "--raw" in out
    code, out = invoke("quarantine", "show", str(garbage["id"]), "--raw", "--config", str(site))
    assert code == 0 and "00 67 61 72 62 61 67 65" in out  # the bytes on request (logged)
    result = runner.invoke(
        app, ["quarantine", "replay", "--all", "--config", str(site), "--by", "ola"]
    )
    assert result.exit_code == 1  # the garbage one still does not decode
    assert "still does not decode" in result.stdout and "1 result(s) stored" in result.stdout
    after = json.loads(invoke("quarantine", "list", "--config", str(site), "--json")[1])
    assert {r["id"]: r["state"] for r in after} == {garbage["id"]: "open", fixed["id"]: "replayed"}
    rows = json.loads(invoke("results", "list", "--config", str(site), "--json")[1])
    assert any(r["specimen"] == "SPEC9" and r["value"] == "17" for r in rows)


def test_audit_verify_fails_after_tampering(site: Path) -> None:
    assert invoke("audit", "verify", "--config", str(site))[0] == 0
    cfg = load_config(site)
    engine = make_engine(cfg.store.url)
    with engine.begin() as conn:
        conn.execute(update(audit).where(audit.c.id == 2).values(actor="someone-else"))
    engine.dispose()
    code, out = invoke("audit", "verify", "--config", str(site), "--json")
    assert code == 1
    assert json.loads(out)["first_bad_id"] == 2


def test_db_upgrade(tmp_path: Path) -> None:
    config = tmp_path / "s.toml"
    config.write_text(
        f'[site]\nname = "x"\n[store]\nurl = "sqlite:///{tmp_path / "n.db"}"\n', encoding="utf-8"
    )
    assert invoke("db", "upgrade", "--config", str(config))[0] == 0
    assert (tmp_path / "n.db").exists()


def wide(*args: str) -> tuple[int, str]:
    """``invoke`` on a terminal wide enough that Rich does not wrap a table's cells."""
    result = runner.invoke(app, list(args), env={"COLUMNS": "250"})
    return result.exit_code, result.stdout


def test_hold_and_quarantine_texts_render_in_english_from_their_codes(site: Path) -> None:
    code, out = wide("results", "list", "--config", str(site))
    assert code == 0 and "Invalid patient ID" in out and "invalid_patient_id" not in out
    rows = json.loads(invoke("results", "list", "--config", str(site), "--json")[1])
    (hold,) = next(r for r in rows if r["holds"])["holds"]
    assert hold["params"]["problem"] == "check_digit_wrong"  # stored as code and params
    assert hold["detail"].startswith("Patient ID ") and "check digit" in hold["detail"]
    assert hold["detail_nb"].startswith("Pasient-ID ") and "kontrollsiffer" in hold["detail_nb"]
    quarantined = json.loads(invoke("quarantine", "list", "--config", str(site), "--json")[1])
    garbage = next(r for r in quarantined if r["field"] == "MSH")
    assert garbage["reason"] == "bad_structure"
    assert garbage["reason_text"] == "The message is not built the way the protocol requires."
    code, out = wide("quarantine", "list", "--config", str(site))
    assert code == 0 and "The message is not built the way the protocol requires." in out
    code, out = wide("quarantine", "show", str(garbage["id"]), "--config", str(site))
    assert "reason: The message is not built the way the protocol requires. (bad_structure)" in out
    assert "error: MSH: missing" in out  # the technical detail as stored
