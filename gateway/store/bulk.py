"""Fast multi-row INSERT for the hot path (results and audit rows), below SQLAlchemy's Core.

Core's per-row parameter processing costs more than SQLite itself at a few thousand rows a
second, so the hottest inserts go straight to the DB-API ``executemany`` with statements built
once per table and dialect. Values are converted the way the column types would convert them
(aware datetimes to UTC; SQLite stores them as naive UTC text in SQLAlchemy's own format, so
Core reads them back unchanged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table

from gateway.store.tables import UtcDateTime

_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


@cache
def _statement(table_name: str, columns: tuple[str, ...], dialect: str) -> str:
    placeholder = "?" if dialect == "sqlite" else "%s"
    names = ", ".join(f'"{c}"' for c in columns)
    values = ", ".join(placeholder for _ in columns)
    return f'INSERT INTO "{table_name}" ({names}) VALUES ({values})'


def _sqlite_time(value: datetime | None, memo: dict[datetime, str]) -> str | None:
    if value is None:
        return None
    text = memo.get(value)
    if text is None:
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store aware datetimes only")
        text = memo[value] = value.astimezone(UTC).strftime(_SQLITE_DATETIME)
    return text


@cache
def _native(sql: str, dialect: str) -> str:
    """Our SQL uses ``?`` placeholders (SQLite's); psycopg wants ``%s``."""
    return sql if dialect == "sqlite" else sql.replace("?", "%s")


def _driver_cursor(conn: Connection) -> Any:
    """A cursor of the driver's own connection, inside the Connection's transaction."""
    return conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


def fetch(conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the driver's own cursor, in the connection's transaction.

    For the hottest statements only: it skips SQLAlchemy's per-call work, and with it the
    column types, so datetimes must be passed through ``db_time``.
    """
    cursor = _driver_cursor(conn)
    try:
        cursor.execute(_native(sql, conn.dialect.name), tuple(params))
        return list(cursor.fetchall()) if cursor.description else []
    finally:
        cursor.close()


def execute(conn: Connection, sql: str, params: Sequence[Any] = ()) -> int:
    """Like ``fetch`` for a statement that returns no rows; the number of rows it changed."""
    cursor = _driver_cursor(conn)
    try:
        cursor.execute(_native(sql, conn.dialect.name), tuple(params))
        return int(cursor.rowcount)
    finally:
        cursor.close()


def db_time(conn: Connection, value: datetime | None) -> Any:
    """An aware datetime as the driver should bind it (SQLite: SQLAlchemy's UTC text)."""
    if conn.dialect.name != "sqlite" or value is None:
        return value
    return _sqlite_time(value, {})


def placeholders(count: int) -> str:
    return ", ".join("?" * count)


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT every row (all rows have the same keys) in one ``executemany``."""
    if not rows:
        return
    columns = tuple(rows[0])
    dialect = conn.dialect.name
    if dialect == "sqlite":
        times = {c for c in columns if isinstance(table.c[c].type, UtcDateTime)}
        memo: dict[datetime, str] = {}  # most rows share the batch's clock
        params = [
            tuple(_sqlite_time(row[c], memo) if c in times else row[c] for c in columns)
            for row in rows
        ]
    else:
        params = [tuple(row[c] for c in columns) for row in rows]
    cursor = _driver_cursor(conn)
    try:
        cursor.executemany(_statement(table.name, columns, dialect), params)
    finally:
        cursor.close()


@cache
def _max_id_statement(table_name: str) -> str:
    return f'SELECT max(id) FROM "{table_name}"'


def next_ids(conn: Connection, table: Table, count: int) -> list[int] | None:
    """On SQLite (one writer at a time under BEGIN IMMEDIATE), the next ``count`` ids of
    ``table``; None elsewhere, where the caller lets the database assign them."""
    if conn.dialect.name != "sqlite":
        return None
    (last,) = fetch(conn, _max_id_statement(table.name))[0]
    last = last or 0
    return list(range(int(last) + 1, int(last) + 1 + count))
