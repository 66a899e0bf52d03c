"""Read access for the web: on SQLite, a query-only engine that never takes the write lock."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import NullPool


def read_engine(engine: Engine) -> Engine:
    """An engine for the dashboard's reads beside the gateway's writer.

    ``make_engine`` starts every SQLite transaction with BEGIN IMMEDIATE, which takes the
    write lock: a dashboard refresh would then queue behind (and hold up) the writer that
    ACKs the analysers. This second engine on the same file opens deferred transactions, so in
    WAL mode reads see one consistent snapshot and run beside the writer, and it is
    ``query_only`` so the web cannot write through it. Connections are not pooled (opening a
    SQLite file is cheap and nothing is left to dispose). Other databases: the engine itself.
    """
    database = engine.url.database or ""
    if engine.dialect.name != "sqlite" or database in ("", ":memory:"):
        return engine
    reader = create_engine(
        engine.url,
        poolclass=NullPool,
        connect_args={"check_same_thread": False, "timeout": 30},
    )

    @event.listens_for(reader, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(reader, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")

    return reader
