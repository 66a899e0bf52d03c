"""`trygg eqa`: a round registered, its value entered, answered and assessed poor (a deviation),
and a split sample outside the allowed difference, all signed with the password, against a real
SQLite store; the exit codes (0 done, 1 refused, 2 bad input) and what the store holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.cli import app
from gateway.people.roles import Role
from gateway.store import people
from gateway.store.engine import make_engine, upgrade
from gateway.store.signin import set_password
from gateway.store.tables import deviations, split_samples
from gateway.store.writer import Tx, run_in_transaction

runner = CliRunner()
PASSWORD = "korrekt hest batteri stift"
ENV = {"TRYGG_PASSWORD": PASSWORD}
SITE = """
[site]
name = "ekv-test"
[store]
url = "{url}"
[[instruments]]
id = "afinion-1"
driver = "astm_afinion2"
url = "tcp-listen://127.0.0.1:5998"
[[tests]]
code = "HbA1c"
instrument = "afinion-1"
unit = "mmol/mol"
split_allowed_percent = 15
"""


@pytest.fixture
def site(tmp_path: Path, sqlite_url: str) -> Path:
    config = tmp_path / "site.toml"
    config.write_text(SITE.format(url=sqlite_url), encoding="utf-8")
    engine = make_engine(sqlite_url)
    upgrade(engine)

    def job(tx: Tx) -> None:
        for person, role in (("ola", Role.OPERATOR), ("kari", Role.QUALITY_MANAGER)):
            people.upsert_person(tx, person, name=person.title(), roles=[role], actor="test")
            set_password(tx, person, PASSWORD, actor="test")

    run_in_transaction(engine, job)
    engine.dispose()
    return config


def eqa(site: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, ["eqa", *args, "--config", str(site)], env=env or ENV)


def rows(site: Path, table: Any) -> list[Any]:
    url = site.read_text(encoding="utf-8").split('url = "', 1)[1].split('"', 1)[0]
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(table)).all())
    finally:
        engine.dispose()


def test_a_round_from_registration_to_a_poor_assessment(site: Path) -> None:
    added = eqa(
        site, "add", "--user", "kari", "--scheme", "Noklus HbA1c", "--shipment", "2026-4",
        "--instrument", "afinion-1", "--sample", "S1:HbA1c", "--received", "2026-12-01",
        "--due", "2026-12-20",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    (listed,) = json.loads(eqa(site, "list", "--json").stdout)
    round_id = str(listed["id"])
    assert (listed["scheme"], listed["state"], listed["due_on"]) == (
        "Noklus HbA1c",
        "registered",
        "2026-12-20",
    )
    # an operator may enter no value for the round; a wrong password signs nothing
    refused = eqa(site, "sample", round_id, "--user", "ola", "--sample", "S1", "--test", "HbA1c",
                  "--value", "52")  # fmt: skip
    assert refused.exit_code == 1
    wrong = eqa(site, "answer", round_id, "--user", "kari", env={"TRYGG_PASSWORD": "not it"})
    assert wrong.exit_code == 1
    # answering before the value is there is refused
    assert eqa(site, "answer", round_id, "--user", "kari").exit_code == 1
    entered = eqa(site, "sample", round_id, "--user", "kari", "--sample", "S1", "--test",
                  "HbA1c", "--value", "52")  # fmt: skip
    assert entered.exit_code == 0, entered.output
    assert eqa(site, "answer", round_id, "--user", "kari").exit_code == 0
    assessed = eqa(site, "assess", round_id, "--user", "kari", "--sample", "S1", "--test",
                   "HbA1c", "--trueness", "poor", "--target", "46")  # fmt: skip
    assert assessed.exit_code == 0, assessed.output
    assert "Deviation" in assessed.output
    shown = json.loads(eqa(site, "list", "--round", round_id, "--json").stdout)
    assert shown["state"] == "assessed"
    (sample,) = shown["samples"]
    assert (sample["value"], sample["trueness"]) == ("52", "poor")
    (deviation,) = rows(site, deviations)
    assert deviation.kind == "eqa_poor"


def test_bad_input_exits_2_and_stores_nothing(site: Path) -> None:
    bad_sample = eqa(site, "add", "--user", "kari", "--scheme", "X", "--shipment", "1",
                     "--instrument", "afinion-1", "--sample", "S1")  # fmt: skip
    assert bad_sample.exit_code == 2 and "LABEL:TEST" in bad_sample.output
    bad_day = eqa(site, "add", "--user", "kari", "--scheme", "X", "--shipment", "1",
                  "--instrument", "afinion-1", "--due", "20.12.2026")  # fmt: skip
    assert bad_day.exit_code == 2 and "20.12.2026" in bad_day.output
    unknown = eqa(site, "add", "--user", "kari", "--scheme", "X", "--shipment", "1",
                  "--instrument", "nope")  # fmt: skip
    assert unknown.exit_code == 2
    assert json.loads(eqa(site, "list", "--json").stdout) == []


def test_a_split_sample_outside_the_test_limit_opens_a_deviation(site: Path) -> None:
    within = eqa(site, "split", "--user", "kari", "--instrument", "afinion-1", "--test", "HbA1c",
                 "--sample", "P1", "--local", "52", "--central", "48")  # fmt: skip
    assert within.exit_code == 0, within.output
    assert "within" in within.output and "15" in within.output  # +8.3 % inside ±15 %
    outside = eqa(site, "split", "--user", "kari", "--instrument", "afinion-1", "--test",
                  "HbA1c", "--sample", "P2", "--local", "57", "--central", "48")  # fmt: skip
    assert outside.exit_code == 0, outside.output
    assert "outside" in outside.output  # +18.8 %
    assert [r.within for r in rows(site, split_samples)] == [True, False]
    (deviation,) = rows(site, deviations)
    assert deviation.kind == "split_sample"
    splits = json.loads(eqa(site, "list", "--splits", "--json").stdout)
    assert {s["sample"] for s in splits} == {"P1", "P2"}
