"""`trygg orders`: the worklist by hand, against a real SQLite store, audited per person."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from drivers.model import InboundMessage, Observation
from gateway.cli import app
from gateway.config import load_config
from gateway.ingest import store_message
from gateway.rules import context_from_config
from gateway.store.engine import make_engine, upgrade
from gateway.store.tables import audit
from gateway.store.writer import run_in_transaction

VALID = "01010012356"  # a valid fødselsnummer
OTHER = "15076500565"  # another one
MASKED = VALID[:6] + "*****"
NOW = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)

runner = CliRunner()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site with CRP and HBA1C mapped, and one CRP result already in for specimen S1."""
    config = tmp_path / "site.toml"
    config.write_text(
        f"""
[site]
name = "orders-test"
[store]
url = "sqlite:///{tmp_path / "orders.sqlite3"}"
[[instruments]]
id = "bench-1"
driver = "hl7_mllp"
url = "tcp-listen://127.0.0.1:5999"
[[tests]]
code = "CRP"
nlk = "NPU19748"
[[tests]]
code = "HBA1C"
nlk = "NPU27300"
""",
        encoding="utf-8",
    )
    cfg = load_config(config)
    engine = make_engine(cfg.store.url)
    upgrade(engine)
    crp = Observation("bench-1", "CRP", "9", patient_id=VALID, specimen_id="S1", performed_at=NOW)
    message = InboundMessage("bench-1", "hl7", b"m1", NOW, observations=(crp,))
    context = context_from_config(cfg)
    run_in_transaction(engine, lambda tx: store_message(tx, message, context))
    engine.dispose()
    return config


def orders(site: Path, *args: str) -> Result:
    return runner.invoke(app, ["orders", *args, "--config", str(site)])


def listed(site: Path, state: str = "open") -> list[dict[str, Any]]:
    result = orders(site, "list", "--state", state, "--json")
    assert result.exit_code == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def order_audit(site: Path) -> list[tuple[str, str, str, str]]:
    """(action, actor, entity_id, reason) of the order audit rows, oldest first."""
    engine = make_engine(load_config(site).store.url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(audit.c.action, audit.c.actor, audit.c.entity_id, audit.c.reason)
                .where(audit.c.entity == "order")
                .order_by(audit.c.id)
            ).all()
    finally:
        engine.dispose()
    return [(row.action, row.actor, row.entity_id, row.reason) for row in rows]


def test_add_places_one_line_per_test_audited_by_name(site: Path) -> None:
    result = orders(
        site,
        "add",
        "S1",
        "CRP",
        "HBA1C",
        "--by",
        "kari.bioing",
        "--patient",
        VALID,
        "--priority",
        "S",
        "--placer",
        "LIS42",
    )
    assert result.exit_code == 0, result.stderr
    assert "Placed 2 test(s) for specimen S1: CRP, HBA1C" in result.stdout
    assert MASKED in result.stdout and VALID not in result.stdout
    rows = listed(site)
    assert [(r["test_code"], r["resulted"]) for r in rows] == [("HBA1C", False), ("CRP", True)]
    for row in rows:
        assert row["specimen_id"] == "S1" and row["state"] == "open"
        assert row["priority"] == "S" and row["placer_order"] == "LIS42"
        assert row["patient"] == MASKED
        assert row["placed_by"] == row["updated_by"] == "kari.bioing"
    ids = sorted(r["id"] for r in rows)
    assert order_audit(site) == [
        ("order.placed", "kari.bioing", f"{ids[0]}-{ids[1]}", "placed by hand")
    ]
    assert runner.invoke(app, ["audit", "verify", "--config", str(site)]).exit_code == 0


def test_add_again_places_only_what_is_not_open(site: Path) -> None:
    assert orders(site, "add", "S1", "CRP", "--by", "kari").exit_code == 0
    again = orders(site, "add", "S1", "CRP", "HBA1C", "CRP", "--by", "ola")
    assert again.exit_code == 0, again.stderr
    assert "Placed 1 test(s) for specimen S1: HBA1C" in again.stdout
    assert "Already open, not placed again: CRP" in again.stdout
    rows = listed(site)
    assert sorted(r["test_code"] for r in rows) == ["CRP", "HBA1C"]
    assert {r["test_code"]: r["placed_by"] for r in rows} == {"CRP": "kari", "HBA1C": "ola"}
    assert [(action, actor) for action, actor, _id, _reason in order_audit(site)] == [
        ("order.placed", "kari"),
        ("order.placed", "ola"),
    ]
    # every test already open: nothing placed, nothing audited, still a success
    third = orders(site, "add", "S1", "HBA1C", "--by", "per")
    assert third.exit_code == 0 and "Placed" not in third.stdout
    assert len(listed(site)) == 2 and len(order_audit(site)) == 2


def test_list_plain_shows_masked_patient_and_oslo_time(site: Path) -> None:
    empty = orders(site, "list")
    assert empty.exit_code == 0 and "No open order lines." in empty.stdout
    orders(site, "add", "S1", "CRP", "--by", "kari", "--patient", VALID, "--priority", "A")
    result = orders(site, "list")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert MASKED in out and VALID not in out
    assert "S1" in out and "CRP" in out and "kari" in out and "Times in Europe/Oslo." in out
    (row,) = listed(site)
    placed = datetime.fromisoformat(row["placed_at"])
    assert placed.tzinfo is not None
    oslo = placed.astimezone(ZoneInfo("Europe/Oslo")).strftime("%Y-%m-%d %H:%M")
    utc = placed.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    assert oslo in out and oslo != utc  # Oslo is never at UTC's offset


def test_list_json_keeps_list_orders_shape(site: Path) -> None:
    orders(site, "add", "S1", "CRP", "--by", "kari", "--patient", VALID)
    result = orders(site, "list", "--json")
    assert VALID not in result.stdout
    (row,) = json.loads(result.stdout)
    assert set(row) == {
        "id",
        "specimen_id",
        "test_code",
        "patient",
        "priority",
        "placer_order",
        "state",
        "resulted",
        "placed_at",
        "placed_by",
        "updated_at",
        "updated_by",
    }
    assert row["priority"] == "R"  # the default


def test_list_limit_and_state_filter(site: Path) -> None:
    orders(site, "add", "S1", "CRP", "HBA1C", "--by", "kari")
    orders(site, "add", "S2", "CRP", "--by", "kari")
    orders(site, "cancel", "S2", "--by", "kari")
    newest = json.loads(orders(site, "list", "--limit", "1", "--json").stdout)
    assert [(r["specimen_id"], r["test_code"]) for r in newest] == [("S1", "HBA1C")]
    assert [r["specimen_id"] for r in listed(site, "cancelled")] == ["S2"]
    assert len(listed(site, "all")) == 3
    bad = orders(site, "list", "--state", "closed")
    assert bad.exit_code == 2 and "--state" in bad.stderr


def test_cancel_one_test(site: Path) -> None:
    orders(site, "add", "S1", "CRP", "HBA1C", "--by", "kari")
    result = orders(site, "cancel", "S1", "CRP", "--by", "ola", "--reason", "feil rør")
    assert result.exit_code == 0, result.stderr
    assert "Cancelled 1 test(s) of specimen S1: CRP" in result.stdout
    assert [r["test_code"] for r in listed(site)] == ["HBA1C"]
    (cancelled,) = listed(site, "cancelled")
    assert cancelled["test_code"] == "CRP" and cancelled["updated_by"] == "ola"
    assert cancelled["placed_by"] == "kari"
    assert order_audit(site)[-1] == ("order.cancelled", "ola", str(cancelled["id"]), "feil rør")


def test_cancel_without_tests_cancels_every_open_test(site: Path) -> None:
    orders(site, "add", "S1", "CRP", "HBA1C", "--by", "kari")
    orders(site, "add", "S2", "CRP", "--by", "kari")
    result = orders(site, "cancel", "S1", "--by", "ola")
    assert result.exit_code == 0, result.stderr
    assert "Cancelled 2 test(s) of specimen S1: CRP, HBA1C" in result.stdout
    assert [r["specimen_id"] for r in listed(site)] == ["S2"]  # another specimen untouched
    action, actor, _ids, reason = order_audit(site)[-1]
    assert (action, actor, reason) == ("order.cancelled", "ola", "cancelled by hand")


def test_cancel_with_nothing_open_exits_1(site: Path) -> None:
    unknown = orders(site, "cancel", "S9", "--by", "ola")
    assert unknown.exit_code == 1 and "Nothing cancelled" in unknown.stderr
    orders(site, "add", "S1", "CRP", "--by", "kari")
    not_open = orders(site, "cancel", "S1", "HBA1C", "--by", "ola")
    assert not_open.exit_code == 1 and "HBA1C" in not_open.stderr
    assert [r["test_code"] for r in listed(site)] == ["CRP"]
    assert orders(site, "cancel", "S1", "--by", "ola").exit_code == 0
    assert orders(site, "cancel", "S1", "--by", "ola").exit_code == 1  # already cancelled
    assert [action for action, *_rest in order_audit(site)] == ["order.placed", "order.cancelled"]


def test_cancel_names_tests_that_were_not_open(site: Path) -> None:
    orders(site, "add", "S1", "CRP", "--by", "kari")
    result = orders(site, "cancel", "S1", "CRP", "GLU", "--by", "ola")
    assert result.exit_code == 0
    assert "Cancelled 1 test(s)" in result.stdout
    assert "Not open, nothing to cancel: GLU" in result.stdout


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("S1", "CRP", "--priority", "X"), "--priority"),
        (("S1", "CRP", "--priority", "SA"), "--priority"),
        (("", "CRP"), "SPECIMEN"),
        (("  ", "CRP"), "SPECIMEN"),
        (("S1", ""), "TEST"),
        (("S1", "CRP", "C|R"), "TEST"),
        (("S^1", "CRP"), "SPECIMEN"),
        (("S1", "CRP", "--patient", "0101\r0012356"), "--patient"),
        (("S1", "CRP", "--patient", "1" * 33), "--patient"),
    ],
)
def test_add_rejects_bad_input_naming_it(site: Path, args: tuple[str, ...], named: str) -> None:
    result = orders(site, "add", *args, "--by", "kari")
    assert result.exit_code == 2
    assert named in result.stderr
    assert listed(site, "all") == [] and order_audit(site) == []


def test_add_needs_a_name_for_the_audit_trail(site: Path) -> None:
    missing = orders(site, "add", "S1", "CRP")
    assert missing.exit_code == 2 and "--by" in missing.stderr
    blank = orders(site, "add", "S1", "CRP", "--by", " ")
    assert blank.exit_code == 2 and "--by" in blank.stderr
    assert listed(site, "all") == []


def test_lowercase_priority_is_accepted(site: Path) -> None:
    assert orders(site, "add", "S1", "CRP", "--by", "kari", "--priority", "s").exit_code == 0
    assert listed(site)[0]["priority"] == "S"


def test_add_refuses_a_specimen_open_for_another_patient(site: Path) -> None:
    orders(site, "add", "S1", "CRP", "--by", "kari", "--patient", VALID)
    result = orders(site, "add", "S1", "HBA1C", "--by", "ola", "--patient", OTHER)
    assert result.exit_code == 1 and "another patient" in result.stderr
    assert OTHER not in result.stderr and VALID not in result.stderr
    assert [r["test_code"] for r in listed(site)] == ["CRP"]
    # without a patient the test joins the open order
    assert orders(site, "add", "S1", "HBA1C", "--by", "ola").exit_code == 0
    assert len(listed(site)) == 2


def test_an_unmapped_test_code_is_placed_with_a_note(site: Path) -> None:
    result = orders(site, "add", "S1", "CPR", "--by", "kari")
    assert result.exit_code == 0
    assert "not a test code in the config: CPR" in result.stderr
    assert [r["test_code"] for r in listed(site)] == ["CPR"]
