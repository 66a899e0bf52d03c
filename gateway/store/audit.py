"""The append-only, hash-chained audit log: append within a transaction, verify the chain."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from gateway.store import bulk
from gateway.store.tables import audit, audit_head

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit row before it is chained: who did what to which entity, why, before/after."""

    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    reason: str = ""
    before: str = ""
    after: str = ""


def to_json(value: Mapping[str, Any] | None) -> str:
    """Canonical JSON for before/after snapshots (sorted keys, datetimes as ISO strings)."""
    if not value:
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


def digest_fields(*fields: str) -> str:
    """SHA-256 over length-prefixed fields, so no two different tuples hash alike."""
    return hashlib.sha256("".join(f"{len(f)}:{f}" for f in fields).encode("utf-8")).hexdigest()


#: the ``entity_id`` column's width; a group's id list is split into rows that fit
ENTITY_ID_WIDTH = 64


def compact_ids(ids: Iterable[int], width: int = ENTITY_ID_WIDTH) -> list[str]:
    """Sorted ids as ranges (``"7-19,23"``), split into texts of at most ``width`` characters.

    A batch move (ingest, the LIS forwarder) writes one audit row per text instead of one per
    result: results of one message have consecutive ids, so that is nearly always one row.
    """
    ordered = sorted(set(ids))
    parts: list[str] = []
    start = prev = None
    for i in ordered:
        if prev is not None and i == prev + 1:
            prev = i
            continue
        if start is not None:
            parts.append(f"{start}-{prev}" if prev != start else str(start))
        start = prev = i
    if start is not None:
        parts.append(f"{start}-{prev}" if prev != start else str(start))
    texts: list[str] = []
    current = ""
    for part in parts:
        candidate = f"{current},{part}" if current else part
        if len(candidate) <= width:
            current = candidate
        else:
            texts.append(current)
            current = part
    if current:
        texts.append(current)
    return texts


def expand_ids(entity_id: str) -> list[int]:
    """The ids an ``entity_id`` names: ``"7"``, or ranges like ``"7-19,23"`` (see compact_ids)."""
    ids: list[int] = []
    for part in entity_id.split(","):
        low, dash, high = part.partition("-")
        if dash:
            ids.extend(range(int(low), int(high) + 1))
        else:
            ids.append(int(low))
    return ids


def row_hash(row_id: int, entry: AuditEntry, prev_hash: str) -> str:
    """The hash that chains a row to the one before it."""
    return digest_fields(
        str(row_id),
        entry.at.isoformat(),
        entry.actor,
        entry.action,
        entry.entity,
        entry.entity_id,
        entry.reason,
        entry.before,
        entry.after,
        prev_hash,
    )


def append(conn: Connection, entries: list[AuditEntry]) -> None:
    """Chain and insert ``entries`` inside the caller's transaction.

    The single ``audit_head`` row is read FOR UPDATE, so concurrent writers (the gateway and a
    CLI command, or two gateway processes on PostgreSQL) serialise on it and the chain stays linear.
    """
    if not entries:
        return
    lock = "" if conn.dialect.name == "sqlite" else " FOR UPDATE"  # SQLite: BEGIN IMMEDIATE
    [(head_id, head_hash)] = bulk.fetch(
        conn, f"SELECT last_id, last_hash FROM audit_head WHERE id = 1{lock}"
    )
    last_id, last_hash = int(head_id), str(head_hash)
    rows = []
    for entry in entries:
        last_id += 1
        digest = row_hash(last_id, entry, last_hash)
        rows.append(
            {
                "id": last_id,
                "at": entry.at,
                "actor": entry.actor,
                "action": entry.action,
                "entity": entry.entity,
                "entity_id": entry.entity_id,
                "reason": entry.reason,
                "before": entry.before,
                "after": entry.after,
                "prev_hash": last_hash,
                "hash": digest,
            }
        )
        last_hash = digest
    bulk.insert_rows(conn, audit, rows)
    bulk.execute(
        conn, "UPDATE audit_head SET last_id = ?, last_hash = ? WHERE id = 1", (last_id, last_hash)
    )


@dataclass(frozen=True, slots=True)
class VerifyReport:
    rows: int
    ok: bool
    first_bad_id: int | None = None
    problem: str = ""


def _rows(conn: Connection, batch: int = 5000) -> Iterator[Any]:
    last = 0
    while True:
        chunk = conn.execute(
            select(audit).where(audit.c.id > last).order_by(audit.c.id).limit(batch)
        ).all()
        if not chunk:
            return
        yield from chunk
        last = int(chunk[-1].id)


def verify(conn: Connection) -> VerifyReport:
    """Recompute every hash; report the first row where the chain breaks."""
    expected_prev = GENESIS
    expected_id = 0
    count = 0
    for row in _rows(conn):
        expected_id += 1
        count += 1
        if row.id != expected_id:
            return VerifyReport(count, False, row.id, f"row {expected_id} is missing")
        if row.prev_hash != expected_prev:
            return VerifyReport(count, False, row.id, "prev_hash does not match the row before")
        entry = AuditEntry(
            row.at,
            row.actor,
            row.action,
            row.entity,
            row.entity_id,
            row.reason,
            row.before,
            row.after,
        )
        if row_hash(row.id, entry, row.prev_hash) != row.hash:
            return VerifyReport(count, False, row.id, "row content does not match its hash")
        expected_prev = row.hash
    head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).one()
    if head.last_id != expected_id or head.last_hash != expected_prev:
        return VerifyReport(count, False, None, "the chain head does not match the last row")
    return VerifyReport(count, True)
