"""Damage a real SQLite store the way a failing disk or a stray program would, for the tests.

The store runs in WAL mode, so the newest copy of a page may sit in the -wal file rather than in
the database file: a checkpoint first moves every page into the file, then junk over the file's
pages (all but the header page, which keeps it recognisable as SQLite) reaches every table. A
connection that cached the pages before keeps working from its cache; a fresh one (the check's)
reads the junk and SQLite reports the file as malformed.
"""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path

PAGE = 4096


def checkpoint(path: Path) -> None:
    """Move every committed page from the WAL into the database file."""
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()


def overwrite_pages(path: Path, *, first_page: int = 2, seed: int = 9) -> int:
    """Junk over pages ``first_page``.. of the file (1-based, as SQLite counts); returns bytes."""
    rng = random.Random(seed)
    size = path.stat().st_size
    start = (first_page - 1) * PAGE
    junk = rng.randbytes(max(0, size - start))
    with path.open("r+b") as handle:
        handle.seek(start)
        handle.write(junk)
        handle.flush()
        os.fsync(handle.fileno())
    return len(junk)


def damage_tables(path: Path, tables: tuple[str, ...], *, seed: int = 9) -> None:
    """Checkpoint, then junk over the root pages of ``tables`` only: the schema still reads
    (migrations pass), a query of those tables fails."""
    checkpoint(path)
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
    try:
        roots = [
            int(page)
            for (page,) in conn.execute(
                "SELECT rootpage FROM sqlite_master WHERE tbl_name IN "
                f"({','.join('?' * len(tables))}) AND rootpage > 1",
                tables,
            )
        ]
    finally:
        conn.close()
    rng = random.Random(seed)
    with path.open("r+b") as handle:
        for page in roots:
            handle.seek((page - 1) * PAGE)
            handle.write(rng.randbytes(PAGE))
        handle.flush()
        os.fsync(handle.fileno())


def damage(path: Path, *, seed: int = 9) -> None:
    """Checkpoint, then overwrite every page but the first: the store fails its check."""
    checkpoint(path)
    overwrite_pages(path, seed=seed)


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))
