"""The store's health: which database errors mean a broken store, and when it counts as healed.

The errors are real ones (a damaged SQLite file, a constraint, a lock, a refused PostgreSQL
connection), translated as the writer and the web see them.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from gateway.store.check import check_store
from gateway.store.engine import make_engine, upgrade
from gateway.store.health import StoreHealth, store_failure
from tests.ports import free_port
from tests.store_damage import damage

T0 = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)


def raised(job: object) -> BaseException:
    try:
        job()  # type: ignore[operator]
    except Exception as exc:
        return exc
    raise AssertionError("no error")


def test_a_damaged_file_is_a_store_failure_and_fails_the_check(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    assert check_store(f"sqlite:///{path}").ok
    damage(path)
    report = check_store(f"sqlite:///{path}")
    assert not report.ok and report.problem == "corrupt" and report.method == "quick_check"
    fresh = make_engine(f"sqlite:///{path}")
    try:

        def read() -> None:
            with fresh.connect() as conn:
                conn.execute(text("SELECT count(*) FROM results")).scalar_one()

        error = raised(read)
        assert isinstance(error, SQLAlchemyError)
        failure = store_failure(error)
        assert failure is not None and failure.code == "corrupt"
        assert "malformed" in failure.detail and "SELECT" not in failure.detail
    finally:
        fresh.dispose()


def test_constraint_and_lock_errors_are_not_store_failures(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    conn.execute("INSERT INTO t VALUES (1)")
    assert store_failure(raised(lambda: conn.execute("INSERT INTO t VALUES (1)"))) is None
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        locked = raised(lambda: conn.execute("BEGIN IMMEDIATE"))
        assert isinstance(locked, sqlite3.OperationalError)
        assert store_failure(locked) is None  # contention, not damage: the next write may pass
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        conn.close()
    assert store_failure(ValueError("a bug")) is None


def test_a_refused_postgres_connection_is_unreachable() -> None:
    engine = create_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing",
        connect_args={"connect_timeout": 2},
    )
    try:
        error = raised(engine.connect)
    finally:
        engine.dispose()
    failure = store_failure(error)
    assert failure is not None and failure.code == "unreachable"
    report = check_store(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing")
    assert not report.ok and report.problem == "unreachable" and report.method == "connection"


def test_health_fails_at_once_and_heals_only_by_a_check_started_after_the_failure() -> None:
    changes: list[bool] = []
    health = StoreHealth("sqlite", on_change=lambda h: changes.append(h.ok))
    assert health.ok and health.snapshot()["status"] == "ok"
    started = health.generation  # a check starts...
    assert health.fail("io_error", "disk I/O error", source="write", now=T0)
    assert not health.fail("io_error", "disk I/O error", source="write", now=T0)  # once
    assert not health.passed(started, now=T0)  # ...and passes: it began before the failure
    assert not health.ok
    snapshot = health.snapshot()
    assert snapshot["status"] == "failed" and snapshot["problem"] == "io_error"
    assert snapshot["source"] == "write" and snapshot["since"] == T0.isoformat()
    assert health.passed(health.generation, now=T0)
    assert health.ok and changes == [False, True]


def test_health_is_safe_from_many_threads() -> None:
    health = StoreHealth("sqlite")
    barrier = threading.Barrier(8)

    def fail() -> None:
        barrier.wait()
        health.fail("corrupt", "x", source="write")

    threads = [threading.Thread(target=fail) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not health.ok and health.snapshot()["failures"] == 1


@pytest.mark.postgres
def test_check_on_a_good_postgres_store(postgres_url: str) -> None:
    report = check_store(postgres_url)
    assert report.ok and report.method == "connection"
