"""Engine creation (SQLite in WAL with full fsync, or PostgreSQL) and Alembic upgrades."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from gateway.errors import StoreError
from gateway.store.health import db_error_text

MIGRATIONS = Path(__file__).with_name("migrations")
#: execution option that marks a connection as a writer (SQLite: BEGIN IMMEDIATE)
WRITE_OPTION = "trygg_write"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for an in-memory database)."""
    database = make_url(url).database or ""
    if not database or database == ":memory:":
        return None
    return Path(database).expanduser().resolve()


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, synchronous=FULL and BEGIN IMMEDIATE transactions.

    synchronous=FULL because a commit is what lets us ACK the analyser: NORMAL in WAL mode can
    lose the last transactions on power loss. Writers (connections with the ``WRITE_OPTION``
    execution option, see ``write_transaction``) take the write lock up front with BEGIN
    IMMEDIATE, so two writers (gateway and a CLI command) queue instead of failing on upgrade.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            # only writers take the write lock up front; readers (web, CLI, the forwarder's
            # look-ups) start deferred and, in WAL mode, never wait for the writer
            writing = connection.get_execution_options().get(WRITE_OPTION, False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        # a server that does not answer must not hang a write (or the check) for minutes
        return create_engine(parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    raise StoreError(f"store.url: unsupported database {parsed.get_backend_name()!r}")


def alembic_config(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (the gateway calls this on start)."""
    try:
        command.upgrade(alembic_config(engine), revision)
    except Exception as exc:  # alembic raises many types; this is the one boundary
        # the driver's message only: SQLAlchemy's text appends statements and their values
        raise StoreError(f"database migration failed: {db_error_text(exc)}") from exc


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it holds the write lock from its start."""
    with engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
        yield conn
