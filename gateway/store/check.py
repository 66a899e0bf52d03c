"""The store's check and backup: SQLite's quick_check and online backup, PostgreSQL's connection.

``check_store`` is what the gateway runs at start and on its schedule, and what
``trygg db check`` prints. On SQLite it opens a connection of its own for every check: a
connection that has the pages in its cache (the writer's) would check its cache, not the file.
``PRAGMA quick_check`` reads every page of the file (it skips only the index-to-table
cross-check of ``integrity_check``), so it runs on a schedule, never per request. On
PostgreSQL the check is the connection: the server answers on a connection from the pool,
where SQLAlchemy's pre-ping replaces one that dropped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from gateway.catalogue import FALLBACK_LANGUAGE, text
from gateway.errors import StoreDamagedError, StoreError
from gateway.store.engine import is_sqlite, make_engine, sqlite_file
from gateway.store.health import StoreHealth, store_failure

#: free disk space below which a SQLite store counts as full: the WAL grows to ~4 MB between
#: checkpoints, and a write that finds no room fails (so the check fails before the writes do)
MIN_FREE_BYTES: Final = 16 * 1024 * 1024
#: how many problems quick_check lists at most (the first say enough)
_MAX_PROBLEMS: Final = 20
_SHOWN_PROBLEMS: Final = 3


@dataclass(frozen=True, slots=True)
class CheckReport:
    """One check of a store: passed or not, and what it found (technical, no row data)."""

    ok: bool
    backend: str  # "sqlite" or "postgresql"
    method: str  # "quick_check" or "connection"
    store: str  # the file, or the URL without its password
    problem: str = ""  # a code of ``gateway.store.health.PROBLEMS``
    detail: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def backend_of(url: str) -> str:
    return make_url(url).get_backend_name()


def shown_store(url: str) -> str:
    """The store as a person should read it: the file, or the URL without the password."""
    path = sqlite_file(url) if is_sqlite(url) else None
    if path is not None:
        return str(path)
    return make_url(url).render_as_string(hide_password=True)


def _open_existing(path: Path, timeout: float = 30.0) -> sqlite3.Connection:
    """A connection of our own to an existing file (``mode=rw``: never creates one)."""
    return sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=timeout, isolation_level=None
    )


def check_sqlite(path: Path) -> CheckReport:
    """``PRAGMA quick_check`` on a fresh connection to ``path``."""

    def report(ok: bool, problem: str = "", detail: str = "") -> CheckReport:
        return CheckReport(
            ok, "sqlite", "quick_check", str(path), problem, detail, time.monotonic() - started
        )

    started = time.monotonic()
    if not path.is_file():
        return report(False, "missing", f"no database file at {path}")
    try:
        conn = _open_existing(path)
        try:
            rows = conn.execute(f"PRAGMA quick_check({_MAX_PROBLEMS})").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:  # the schema itself could not be read, or the file opened
        failure = store_failure(exc)
        code = failure.code if failure is not None else "corrupt"
        return report(False, code, failure.detail if failure else str(exc))
    if rows == [("ok",)]:
        free = shutil.disk_usage(path.parent).free
        if free < MIN_FREE_BYTES:
            return report(False, "disk_full", f"{free} bytes free on the disk of {path}")
        return report(True)
    lines = [line for (found,) in rows for line in str(found).splitlines()]
    lines = [line for line in lines if not line.startswith("*** in database")]
    return report(False, "corrupt", "; ".join(lines[:_SHOWN_PROBLEMS]))


def check_connection(url: str, engine: Engine | None = None) -> CheckReport:
    """PostgreSQL: ask the server one question on a (pre-pinged) connection."""

    def report(ok: bool, problem: str = "", detail: str = "") -> CheckReport:
        return CheckReport(
            ok,
            backend_of(url),
            "connection",
            shown_store(url),
            problem,
            detail,
            time.monotonic() - started,
        )

    started = time.monotonic()
    own = engine is None
    if engine is None:
        engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1").scalar_one()
    except Exception as exc:
        failure = store_failure(exc)
        if failure is None:
            return report(False, "unreachable", str(exc))
        return report(False, failure.code, failure.detail)
    finally:
        if own:
            engine.dispose()
    return report(True)


def check_store(url: str, *, engine: Engine | None = None) -> CheckReport:
    """The store's check: quick_check on SQLite, the connection on PostgreSQL."""
    if is_sqlite(url):
        path = sqlite_file(url)
        if path is None:  # in memory: nothing on disk to damage
            return CheckReport(True, "sqlite", "quick_check", ":memory:")
        return check_sqlite(path)
    return check_connection(url, engine)


def is_new_store(url: str) -> bool:
    """A SQLite file that does not exist yet (or is empty): the first start creates it."""
    if not is_sqlite(url):
        return False
    path = sqlite_file(url)
    return path is None or not path.exists() or path.stat().st_size == 0


def findings(report: CheckReport) -> dict[str, object]:
    """A failed check's catalogue parameters: the store, what was found and what to do."""
    en = FALLBACK_LANGUAGE
    return {
        "store": report.store,
        "method": report.method,
        "problem": report.problem,
        "what": text(en, f"store.problem.{report.problem}"),
        "detail": report.detail,
        "todo": text(en, f"store.todo.{_backend_key(report.backend)}"),
    }


def _backend_key(backend: str) -> str:
    return "sqlite" if backend == "sqlite" else "postgresql"


def refusal(report: CheckReport) -> StoreDamagedError:
    """The error that refuses to start on (or migrate) a store that failed ``report``: what
    the check found and what to do, from the catalogue in the CLI's language."""
    key = f"store.refuse.{_backend_key(report.backend)}"
    return StoreDamagedError(text(FALLBACK_LANGUAGE, key, **findings(report)))


def require_healthy(url: str, *, engine: Engine | None = None) -> CheckReport | None:
    """Check the store, raising ``StoreDamagedError`` when it fails; None for a new SQLite
    file (nothing to check: the first start creates it)."""
    if is_new_store(url):
        return None
    report = check_store(url, engine=engine)
    if not report.ok:
        raise refusal(report)
    return report


def count_dropped_connections(engine: Engine, health: StoreHealth) -> None:
    """Count the pool's dead connections (found by pre-ping or by a failed statement)."""

    def invalidated(_dbapi: Any, _record: Any, _exc: BaseException | None) -> None:
        health.connection_dropped()

    event.listen(engine.pool, "invalidate", invalidated)


class BackupError(StoreError):
    """A backup could not be made; the message (from the catalogue, in the CLI's language)
    says why."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(text(FALLBACK_LANGUAGE, key, **params))


def backup_sqlite(url: str, destination: Path) -> CheckReport:
    """Copy the live SQLite store to ``destination`` with SQLite's online backup API, then
    check the copy. The copy is one consistent snapshot (one read transaction: in WAL mode the
    gateway's writes go on meanwhile), written beside the destination and renamed into place,
    so a failed backup leaves no half file. An existing file is never overwritten."""
    source = sqlite_file(url)
    if source is None or not source.is_file():
        raise BackupError("store.backup.no_file", store=source or url)
    destination = destination.expanduser().resolve()
    if destination.exists():
        raise BackupError("store.backup.exists", path=destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    try:
        src = _open_existing(source)
        try:
            dst = sqlite3.connect(partial, isolation_level=None)
            try:
                src.backup(dst)  # all pages in one step: a snapshot, not restarted by writes
            finally:
                dst.close()
        finally:
            src.close()
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
    except sqlite3.Error as exc:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        failure = store_failure(exc)
        detail = failure.detail if failure else str(exc)
        raise BackupError("store.backup.failed", store=source, detail=detail) from exc
    os.replace(partial, destination)
    return check_sqlite(destination)


__all__ = [
    "BackupError",
    "CheckReport",
    "backend_of",
    "backup_sqlite",
    "check_connection",
    "check_sqlite",
    "check_store",
    "count_dropped_connections",
    "findings",
    "is_new_store",
    "refusal",
    "require_healthy",
    "shown_store",
]
