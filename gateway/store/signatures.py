"""Electronic signatures and ID corrections: writing them, and reading them for one result.

A signature is a person, a meaning (``gateway.people.roles.HoldAction``, or ``supersede`` when
the system replaced a result by a re-run), a time and what was signed (``detail``, a JSON
object). A correction keeps the original value beside the new one; the result holds the new.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, insert, select

from gateway.national_id import mask
from gateway.store.tables import corrections, signatures
from gateway.store.writer import Tx


def add_signature(
    tx: Tx,
    *,
    person: str,
    meaning: str,
    result_id: int | None,
    comment: str = "",
    detail: Mapping[str, Any] | None = None,
) -> int:
    """Store a signature at the transaction's time; its id."""
    return int(
        tx.conn.execute(
            insert(signatures).returning(signatures.c.id),
            {
                "at": tx.now,
                "person": person,
                "meaning": meaning,
                "result_id": result_id,
                "comment": comment,
                "detail": json.dumps(dict(detail or {}), ensure_ascii=False, sort_keys=True),
            },
        ).scalar_one()
    )


def add_correction(
    tx: Tx, *, result_id: int, field: str, old: str, new: str, reason: str, person: str
) -> int:
    """Keep the original of a corrected field (the caller changes the result); its id."""
    return int(
        tx.conn.execute(
            insert(corrections).returning(corrections.c.id),
            {
                "result_id": result_id,
                "field": field,
                "old_value": old,
                "new_value": new,
                "reason": reason,
                "person": person,
                "at": tx.now,
            },
        ).scalar_one()
    )


def signatures_for(conn: Connection, result_id: int) -> list[dict[str, Any]]:
    """A result's signatures, oldest first: id, at (ISO), person, meaning, comment, detail."""
    rows = conn.execute(
        select(signatures).where(signatures.c.result_id == result_id).order_by(signatures.c.id)
    ).all()
    return [
        {
            "id": row.id,
            "at": row.at.isoformat(),
            "person": row.person,
            "meaning": row.meaning,
            "comment": row.comment,
            "detail": json.loads(row.detail) if row.detail else {},
        }
        for row in rows
    ]


def corrections_for(
    conn: Connection, result_id: int, *, show_patient: bool = False
) -> list[dict[str, Any]]:
    """A result's corrections, oldest first; patient IDs masked unless ``show_patient``."""
    rows = conn.execute(
        select(corrections).where(corrections.c.result_id == result_id).order_by(corrections.c.id)
    ).all()

    def shown(field: str, value: str) -> str:
        return value if show_patient or field != "patient_id" else mask(value)

    return [
        {
            "id": row.id,
            "at": row.at.isoformat(),
            "person": row.person,
            "field": row.field,
            "old_value": shown(row.field, row.old_value),
            "new_value": shown(row.field, row.new_value),
            "reason": row.reason,
        }
        for row in rows
    ]
