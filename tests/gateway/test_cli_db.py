"""`trygg db check` and `trygg db backup`, and no traceback from any command on a broken store.

Every command runs as the real `python -m gateway.cli` child, so what is tested is what a user
sees: the error boundary in ``gateway.cli.main`` included.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from drivers.analysers.generic_hl7 import decode
from gateway.config import load_config
from gateway.ingest import store_message
from gateway.rules import context_from_config
from gateway.store.audit import verify
from gateway.store.engine import make_engine, upgrade
from gateway.store.tables import audit, raw_messages, results
from gateway.store.writer import run_in_transaction
from tests.ports import free_port
from tests.store_damage import damage, damage_tables

NOW = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)


def hl7(n: int) -> bytes:
    return (
        f"MSH|^~\\&|BENCH|SN1|TRYGG|LAB|20261208093000+0000||ORU^R01^ORU_R01|C{n}|P|2.5.1\r"
        f"PID|1||01010012356^^^^NNNOR\rOBR|1||SPEC{n}|CRP^CRP^L|||20261208093000+0000\r"
        f"OBX|1|NM|CRP^CRP^L||{n}|mg/L|||||F\r"
    ).encode()


def write_config(path: Path, store_url: str) -> Path:
    path.write_text(
        f"""
[site]
name = "db-test"
[store]
url = "{store_url}"
[web]
enabled = false
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
    return path


def fill(config: Path, messages: int) -> Engine:
    """Store ``messages`` HL7 messages through the real ingest job; the engine stays open."""
    cfg = load_config(config)
    engine = make_engine(cfg.store.url)
    upgrade(engine)
    context = context_from_config(cfg)
    for n in range(messages):
        message = decode("bench-1", hl7(n), NOW)  # as the HL7 driver hands it over
        assert message.observations
        run_in_transaction(engine, lambda tx, m=message: store_message(tx, m, context))
    return engine


def trygg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def said(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout + done.stderr


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (raw_messages, results, audit)
        }


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, Path]:
    db = tmp_path / "trygg.sqlite3"
    return write_config(tmp_path / "site.toml", f"sqlite:///{db}"), db


def test_db_check_passes_on_a_good_store_and_fails_on_a_damaged_one(
    store: tuple[Path, Path],
) -> None:
    config, db = store
    fill(config, 5).dispose()
    good = trygg("db", "check", "--config", str(config))
    assert good.returncode == 0, said(good)
    assert "quick_check" in good.stdout and str(db) in good.stdout
    as_json = trygg("db", "check", "--config", str(config), "--json")
    report = json.loads(as_json.stdout)
    assert report["ok"] is True and report["backend"] == "sqlite"

    damage(db)
    bad = trygg("db", "check", "--config", str(config))
    assert bad.returncode == 1, said(bad)
    assert "Traceback" not in said(bad)
    assert "damaged" in said(bad).lower() and "trygg db backup" in said(bad)
    report = json.loads(trygg("db", "check", "--config", str(config), "--json").stdout)
    assert report["ok"] is False and report["problem"] == "corrupt"


def test_db_check_on_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "nothing-here.sqlite3"
    config = write_config(tmp_path / "site.toml", f"sqlite:///{db}")
    done = trygg("db", "check", "--config", str(config))
    assert done.returncode == 1 and "Traceback" not in said(done)
    assert str(db) in said(done)
    assert not db.exists()


def test_db_backup_copies_a_live_store_that_passes_the_check(
    store: tuple[Path, Path], tmp_path: Path
) -> None:
    config, _ = store
    engine = fill(config, 12)  # open: the newest rows are still in the -wal file
    try:
        with engine.connect() as conn:  # a reader in the middle of a transaction
            conn.execute(select(func.count()).select_from(results)).scalar_one()
            copy = tmp_path / "backup" / "copy.sqlite3"
            done = trygg("db", "backup", str(copy), "--config", str(config))
        assert done.returncode == 0, said(done)
        assert str(copy) in done.stdout
        expected = counts(engine)
    finally:
        engine.dispose()
    assert expected["results"] == 12
    plain = sqlite3.connect(copy)
    try:
        assert plain.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    finally:
        plain.close()
    copied = make_engine(f"sqlite:///{copy}")
    try:
        assert counts(copied) == expected
        with copied.connect() as conn:
            assert verify(conn).ok
    finally:
        copied.dispose()
    again = trygg("db", "backup", str(copy), "--config", str(config))
    assert again.returncode == 1 and "exists" in said(again)  # never overwrites a file


@pytest.mark.parametrize("where", ["file", "tables"])
@pytest.mark.parametrize(
    "command",
    [
        ("results", "list"),
        ("outbox", "status"),
        ("quarantine", "list"),
        ("audit", "verify"),
        ("orders", "list"),
        ("db", "upgrade"),
        ("db", "backup", "{tmp}/copy.sqlite3"),
    ],
)
def test_no_command_prints_a_traceback_on_a_damaged_store(
    store: tuple[Path, Path], tmp_path: Path, command: tuple[str, ...], where: str
) -> None:
    config, db = store
    fill(config, 3).dispose()
    if where == "file":
        damage(db)
    else:  # the schema still reads, so the migration passes and the query itself fails
        damage_tables(db, ("results", "raw_messages", "audit", "outbox", "quarantine", "orders"))
    args = [part.format(tmp=tmp_path) for part in command]
    done = trygg(*args, "--config", str(config))
    assert done.returncode != 0, said(done)
    output = said(done)
    assert "Traceback" not in output
    assert "trygg db check" in output, output
    assert "[SQL:" not in output and "INSERT" not in output  # no statements, no parameters
    assert len(done.stderr.strip().splitlines()) <= 3, output


@pytest.mark.postgres
def test_db_check_and_backup_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "site.toml", postgres_url)
    fill(config, 2).dispose()
    good = trygg("db", "check", "--config", str(config))
    assert good.returncode == 0, said(good)
    assert "connection" in good.stdout

    backup = trygg("db", "backup", str(tmp_path / "x.dump"), "--config", str(config))
    assert backup.returncode != 0
    assert "pg_dump" in said(backup) and "Traceback" not in said(backup)
    assert not (tmp_path / "x.dump").exists()

    away = write_config(
        tmp_path / "away.toml", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    )
    bad = trygg("db", "check", "--config", str(away))
    assert bad.returncode == 1, said(bad)
    assert "Traceback" not in said(bad) and "unreachable" in said(bad)
    listed = trygg("results", "list", "--config", str(away))
    assert listed.returncode != 0 and "Traceback" not in said(listed)
    assert "trygg db check" in said(listed)
