"""The store's health: failed at once by a failing write or check, healed only by a check.

One ``StoreHealth`` per gateway. The writer fails it when a write meets a broken store (a
damaged or unreadable SQLite file, a full disk, a PostgreSQL server that is gone), the
periodic check (``gateway.store.watch``) fails it when the check does, and so do the web's
reads. Ingest asks it before and after each write: while it is failed, no analyser is told that
a message arrived (``gateway.app.Gateway.ingest``). /api/health and the dashboard's banner read
it.

A failure does not heal by itself when the next write happens to succeed: a write that works
after one that failed proves little (it may have touched only pages that are still good, and
a disk that fails now and then needs looking at). It heals when a check that *started after
the last failure* passes (``passed(generation)``), and the gateway's watch adds a probe write
through the writer before it calls that: so a full disk stays failed until a write goes
through again, and a PostgreSQL server that came back heals within one recheck.

Errors are classified by the database's own codes (SQLite result codes, PostgreSQL SQLSTATE),
not by SQLAlchemy's classes: "database is locked" or a constraint is not a broken store. The
texts kept here come from the driver's exception only (never SQLAlchemy's rendering, which
appends the statement and its parameters: raw messages, patient IDs).
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

#: what a broken store's problem can be (catalogue keys ``store.problem.<code>``)
PROBLEMS: Final = (
    "corrupt",
    "not_a_database",
    "io_error",
    "disk_full",
    "read_only",
    "cannot_open",
    "unreachable",
    "missing",
)
Source = Literal["write", "read", "check"]

_SQLITE_PROBLEMS: Final = {
    sqlite3.SQLITE_CORRUPT: "corrupt",
    sqlite3.SQLITE_NOTADB: "not_a_database",
    sqlite3.SQLITE_IOERR: "io_error",
    sqlite3.SQLITE_FULL: "disk_full",
    sqlite3.SQLITE_READONLY: "read_only",
    sqlite3.SQLITE_CANTOPEN: "cannot_open",
}
#: SQLSTATE -> problem, most specific first (class 08: connection exceptions; 57P01-03: the
#: server shut the connection; 53: out of resources; 58: I/O; XX001/2: data/index corrupted;
#: 25006: read-only transaction, e.g. a standby after a failover)
_PG_PROBLEMS: Final = (
    ("53100", "disk_full"),
    ("XX001", "corrupt"),
    ("XX002", "corrupt"),
    ("25006", "read_only"),
    ("08", "unreachable"),
    ("57P0", "unreachable"),
    ("53", "unreachable"),
    ("58", "io_error"),
)
_DETAIL_MAX = 200


@dataclass(frozen=True, slots=True)
class Failure:
    """What is wrong with the store: a problem code and a technical detail (no row data)."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class Problem:
    """A failure as the health keeps it: with where it was seen and since when."""

    code: str
    detail: str
    source: Source
    since: datetime


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, what caused it, and the driver error an SQLAlchemy error wraps."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        error = todo.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        orig = getattr(error, "orig", None)
        for nxt in (orig, error.__cause__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def _is_psycopg(error: BaseException) -> bool:
    return type(error).__module__.startswith("psycopg")


@functools.cache
def database_error_types() -> tuple[type[Exception], ...]:
    """The classes of SQLAlchemy's and the database drivers' errors (the hottest statements
    run on the driver's own cursor, ``gateway.store.bulk``, so its errors arrive
    untranslated): what ``is_database_error`` knows, and what the web's handler catches."""
    from sqlalchemy.exc import SQLAlchemyError

    types: list[type[Exception]] = [SQLAlchemyError, sqlite3.Error]
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    else:
        types.append(psycopg.Error)
    return tuple(types)


def is_database_error(exc: BaseException) -> bool:
    """An error of SQLAlchemy or of a database driver (see ``database_error_types``)."""
    return isinstance(exc, database_error_types()) or _is_psycopg(exc)


def driver_text(error: BaseException) -> str:
    """The driver's own message, first line only (PostgreSQL's DETAIL lines quote values)."""
    lines = str(error).strip().splitlines()
    first = lines[0].strip() if lines else ""
    return f"{type(error).__name__}: {first}"[:_DETAIL_MAX]


def db_error_text(exc: BaseException) -> str:
    """Safe text for any database error: the driver's message, never statements or values."""
    for error in _chain(exc):
        if isinstance(error, sqlite3.Error) or _is_psycopg(error):
            return driver_text(error)
    if hasattr(exc, "statement"):  # SQLAlchemy's StatementError renders SQL and parameters
        return type(exc).__name__
    return driver_text(exc)


def _sqlite_problem(error: sqlite3.Error) -> str | None:
    code = getattr(error, "sqlite_errorcode", None)
    if not isinstance(code, int):
        return None
    return _SQLITE_PROBLEMS.get(code & 0xFF)  # extended codes: the primary code is the low byte


def _pg_problem(error: BaseException) -> str | None:
    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate is None:
        # no answer from a server at all: the connection could not be made or was lost
        name = type(error).__name__
        return "unreachable" if name in ("OperationalError", "InterfaceError") else None
    for prefix, problem in _PG_PROBLEMS:
        if str(sqlstate).startswith(prefix):
            return problem
    return None


def store_failure(exc: BaseException) -> Failure | None:
    """The store failure ``exc`` shows, or None when it is no sign of a broken store (a
    constraint, a lock held by another writer, a bug)."""
    for error in _chain(exc):
        problem: str | None = None
        if isinstance(error, sqlite3.Error):
            problem = _sqlite_problem(error)
        elif _is_psycopg(error):
            problem = _pg_problem(error)
        elif getattr(error, "connection_invalidated", False):
            problem = "unreachable"  # SQLAlchemy saw the connection drop mid-statement
        if problem is not None:
            return Failure(problem, db_error_text(error))
    return None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class StoreHealth:
    """The store's health, shared by the writer thread, the event loop and the web.

    ``on_change`` is called (outside the lock, on whichever thread saw it) when the store
    fails and when it heals, never for a repeat of the same state.
    """

    def __init__(
        self,
        backend: str,
        *,
        on_change: Callable[[StoreHealth], None] | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.backend = backend
        #: what the periodic check runs: SQLite reads every page, PostgreSQL asks the server
        self.check_method = "quick_check" if backend == "sqlite" else "connection"
        self.on_change = on_change
        self._clock = clock
        self._lock = threading.Lock()
        self._problem: Problem | None = None
        self._generation = 0
        self.failures = 0
        self.checks = 0
        self.last_check_at: datetime | None = None
        self.last_check_ok: bool | None = None
        self.last_check_seconds: float | None = None
        self.connection_drops = 0
        self.last_drop_at: datetime | None = None

    @property
    def ok(self) -> bool:
        return self._problem is None

    @property
    def problem(self) -> Problem | None:
        return self._problem

    @property
    def generation(self) -> int:
        """Moves on every failure: a check that began at an older generation heals nothing."""
        return self._generation

    def fail(self, code: str, detail: str, *, source: Source, now: datetime | None = None) -> bool:
        """Mark the store failed; True when this changed it from healthy."""
        with self._lock:
            self._generation += 1
            if self._problem is not None:
                return False
            self._problem = Problem(code, detail[:_DETAIL_MAX], source, now or self._clock())
            self.failures += 1
        self._changed()
        return True

    def fail_from(self, exc: BaseException, *, source: Source) -> bool:
        """``fail`` when ``exc`` is a store failure; True when it was one."""
        failure = store_failure(exc)
        if failure is None:
            return False
        self.fail(failure.code, failure.detail, source=source)
        return True

    def passed(self, generation: int, now: datetime | None = None) -> bool:
        """A check that began at ``generation`` passed: heal, unless a failure came since.
        True when this healed the store."""
        with self._lock:
            if generation != self._generation or self._problem is None:
                return False
            self._problem = None
        self._changed()
        return True

    def checked(self, ok: bool, seconds: float, now: datetime | None = None) -> None:
        """Record a check's outcome (for /api/health)."""
        with self._lock:
            self.checks += 1
            self.last_check_at = now or self._clock()
            self.last_check_ok = ok
            self.last_check_seconds = round(seconds, 3)

    def connection_dropped(self, now: datetime | None = None) -> None:
        """A pooled connection was found dead and replaced (not a failure by itself)."""
        with self._lock:
            self.connection_drops += 1
            self.last_drop_at = now or self._clock()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)

    def snapshot(self) -> dict[str, Any]:
        """The health as JSON-ready values (times as ISO text)."""
        problem = self._problem

        def iso(when: datetime | None) -> str | None:
            return when.isoformat() if when is not None else None

        return {
            "status": "ok" if problem is None else "failed",
            "backend": self.backend,
            "check": self.check_method,
            "problem": problem.code if problem else "",
            "source": problem.source if problem else "",
            "detail": problem.detail if problem else "",
            "since": iso(problem.since) if problem else None,
            "failures": self.failures,
            "checks": self.checks,
            "last_check_at": iso(self.last_check_at),
            "last_check_ok": self.last_check_ok,
            "last_check_seconds": self.last_check_seconds,
            "connection_drops": self.connection_drops,
            "last_drop_at": iso(self.last_drop_at),
        }


__all__ = [
    "PROBLEMS",
    "Failure",
    "Problem",
    "StoreHealth",
    "db_error_text",
    "driver_text",
    "is_database_error",
    "store_failure",
]
