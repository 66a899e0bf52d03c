"""Reading stored control values for the Levey-Jennings charts and the monthly QC report, and
writing a person's comment on a control point (audited).

A point is a qc_results row joined with its qc_evaluations row (when the live judge made one)
and its qc_comments; ``gateway.qc.points.QcPoint`` carries it as plain data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, func, insert, or_, select

from gateway.qc.points import Comment, QcPoint, SeriesKey, number, violations_from
from gateway.store.tables import control_lots, qc_comments, qc_evaluations, qc_results
from gateway.store.writer import Tx

#: the longest comment kept (a sentence or two on the chart's tooltip)
MAX_COMMENT_CHARS = 1000


class NoSuchControl(LookupError):
    """No stored control value has this id."""


@dataclass(frozen=True, slots=True)
class LotInfo:
    """A control lot as registered (the chart's legend names the material)."""

    lot: str
    material: str
    unit: str


def _when() -> Any:
    """The point's time: when it was performed, else when it was stored."""
    return func.coalesce(qc_results.c.performed_at, qc_results.c.created_at)


def _level() -> Any:
    return func.coalesce(func.nullif(qc_evaluations.c.level, ""), qc_results.c.control_level)


def _base() -> Select[Any]:
    return (
        select(
            qc_results.c.id,
            qc_results.c.instrument_id,
            qc_results.c.test_code,
            qc_results.c.control_level,
            qc_results.c.control_lot,
            qc_results.c.value,
            qc_results.c.unit,
            qc_results.c.performed_at,
            qc_results.c.created_at,
            qc_results.c.performed_by,
            qc_results.c.operator_id,
            qc_evaluations.c.level.label("eval_level"),
            qc_evaluations.c.verdict,
            qc_evaluations.c.target_mean,
            qc_evaluations.c.target_sd,
            qc_evaluations.c.z,
            qc_evaluations.c.violations,
            control_lots.c.lot.label("lot_of_id"),
        )
        .select_from(
            qc_results.outerjoin(
                qc_evaluations, qc_evaluations.c.qc_result_id == qc_results.c.id
            ).outerjoin(control_lots, control_lots.c.id == qc_evaluations.c.lot_id)
        )
        .order_by(_when(), qc_results.c.id)
    )


def _comments(conn: Connection, ids: Sequence[int]) -> dict[int, list[Comment]]:
    found: dict[int, list[Comment]] = {}
    for start in range(0, len(ids), 500):  # stay below SQLite's bound-parameter limit
        chunk = list(ids[start : start + 500])
        rows = conn.execute(
            select(qc_comments)
            .where(qc_comments.c.qc_result_id.in_(chunk))
            .order_by(qc_comments.c.at, qc_comments.c.id)
        ).mappings()
        for row in rows:
            found.setdefault(int(row["qc_result_id"]), []).append(
                Comment(int(row["id"]), str(row["person"]), row["at"], str(row["text"]))
            )
    return found


def _violations(text: str | None) -> Any:
    if not text:
        return []
    try:
        return json.loads(text)
    except ValueError:
        return []  # an unreadable row marks nothing rather than breaking the chart


def _points(conn: Connection, query: Select[Any]) -> list[QcPoint]:
    rows = list(conn.execute(query).mappings())
    comments = _comments(conn, [int(r["id"]) for r in rows])
    points: list[QcPoint] = []
    for row in rows:
        level = str(row["eval_level"] or row["control_level"] or "")
        points.append(
            QcPoint(
                qc_result_id=int(row["id"]),
                instrument_id=str(row["instrument_id"]),
                test_code=str(row["test_code"]),
                level=level,
                lot=str(row["control_lot"] or row["lot_of_id"] or ""),
                at=row["performed_at"] or row["created_at"],
                value_text=str(row["value"]),
                unit=str(row["unit"] or ""),
                performed_by=str(row["performed_by"] or row["operator_id"] or ""),
                verdict=str(row["verdict"] or ""),
                target_mean=number(row["target_mean"]),
                target_sd=number(row["target_sd"]),
                z=number(row["z"]),
                violations=violations_from(_violations(row["violations"])),
                comments=tuple(comments.get(int(row["id"]), ())),
            )
        )
    return points


def series_points(
    conn: Connection,
    key: SeriesKey,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    lot: str | None = None,
) -> list[QcPoint]:
    """One series' points in time order, within [start, end) when given, of one lot if asked."""
    query = _base().where(
        qc_results.c.instrument_id == key.instrument_id,
        qc_results.c.test_code == key.test_code,
        _level() == key.level,
    )
    if start is not None:
        query = query.where(_when() >= start)
    if end is not None:
        query = query.where(_when() < end)
    if lot:
        query = query.where(qc_results.c.control_lot == lot)
    return _points(conn, query)


def month_points(
    conn: Connection, start: datetime, end: datetime, *, instrument: str | None = None
) -> list[QcPoint]:
    """Every control value performed in [start, end), of one instrument if asked."""
    query = _base().where(and_(_when() >= start, _when() < end))
    if instrument:
        query = query.where(qc_results.c.instrument_id == instrument)
    return _points(conn, query)


def point(conn: Connection, qc_result_id: int) -> QcPoint | None:
    found = _points(conn, _base().where(qc_results.c.id == qc_result_id))
    return found[0] if found else None


def series_keys(conn: Connection) -> list[tuple[SeriesKey, list[str]]]:
    """Every series with stored values and its lots (first used first): the chart's choices."""
    rows = conn.execute(
        _base()
        .with_only_columns(
            qc_results.c.instrument_id,
            qc_results.c.test_code,
            _level().label("level"),
            qc_results.c.control_lot,
        )
        .order_by(None)
        .order_by(qc_results.c.instrument_id, qc_results.c.test_code, "level", qc_results.c.id)
    ).all()
    found: dict[SeriesKey, list[str]] = {}
    for instrument_id, test_code, level, lot in rows:
        lots = found.setdefault(SeriesKey(str(instrument_id), str(test_code), str(level)), [])
        if lot and lot not in lots:
            lots.append(str(lot))
    return list(found.items())


def lot_infos(conn: Connection, instrument_id: str, test_code: str) -> dict[str, LotInfo]:
    """The registered lots of a test (the instrument's own, or any instrument's), by lot."""
    rows = conn.execute(
        select(control_lots.c.lot, control_lots.c.material, control_lots.c.unit)
        .where(
            control_lots.c.test_code == test_code,
            or_(control_lots.c.instrument_id == instrument_id, control_lots.c.instrument_id == ""),
        )
        .order_by(control_lots.c.id)
    ).all()
    return {str(lot): LotInfo(str(lot), str(material), str(unit)) for lot, material, unit in rows}


def add_comment(tx: Tx, qc_result_id: int, person: str, text: str) -> int:
    """Store ``person``'s comment on a control point, with an audit row; its id.

    ValueError for an empty comment; ``NoSuchControl`` when there is no such control value.
    """
    cleaned = " ".join(text.split())[:MAX_COMMENT_CHARS]
    if not cleaned:
        raise ValueError("empty comment")
    exists = tx.conn.execute(
        select(qc_results.c.id).where(qc_results.c.id == qc_result_id)
    ).scalar_one_or_none()
    if exists is None:
        raise NoSuchControl(qc_result_id)
    comment_id = int(
        tx.conn.execute(
            insert(qc_comments)
            .values(qc_result_id=qc_result_id, person=person, at=tx.now, text=cleaned)
            .returning(qc_comments.c.id)
        ).scalar_one()
    )
    tx.audit(
        actor=person,
        action="qc.comment",
        entity="qc_result",
        entity_id=qc_result_id,
        after={"comment_id": comment_id, "text": cleaned},
    )
    return comment_id
