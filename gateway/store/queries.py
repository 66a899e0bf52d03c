"""Read-side queries shared by the CLI, the web pages, the demo and the tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from gateway.national_id import mask
from gateway.store.results import decode_flags
from gateway.store.tables import (
    deviations,
    holds,
    instruments,
    outbox,
    outbox_items,
    qc_results,
    quarantine,
    raw_messages,
    results,
)
from gateway.texts import hold_json, params_from_json, quarantine_code, quarantine_text


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts over the whole store; the demo's summary JSON is built from this."""

    received: int
    by_state: dict[str, int] = field(default_factory=dict)
    held_by_reason: dict[str, int] = field(default_factory=dict)
    quarantined: int = 0
    qc: int = 0
    raw_messages: int = 0
    outbox_by_state: dict[str, int] = field(default_factory=dict)
    deviations: int = 0


def summary(conn: Connection) -> Summary:
    by_state = {
        str(state): int(n)
        for state, n in conn.execute(
            select(results.c.state, func.count()).group_by(results.c.state)
        ).all()
    }
    held_by_reason = {
        str(reason): int(n)
        for reason, n in conn.execute(
            select(holds.c.reason, func.count(func.distinct(holds.c.result_id)))
            .join(results, results.c.id == holds.c.result_id)
            .where(holds.c.released_at.is_(None), results.c.state == "held")
            .group_by(holds.c.reason)
        ).all()
    }
    outbox_by_state = {
        str(state): int(n)
        for state, n in conn.execute(
            select(outbox.c.state, func.count()).group_by(outbox.c.state)
        ).all()
    }
    return Summary(
        received=sum(by_state.values()),
        by_state=by_state,
        held_by_reason=held_by_reason,
        quarantined=int(
            conn.execute(
                select(func.count()).select_from(quarantine).where(quarantine.c.state == "open")
            ).scalar_one()
        ),
        qc=int(conn.execute(select(func.count()).select_from(qc_results)).scalar_one()),
        raw_messages=int(conn.execute(select(func.count()).select_from(raw_messages)).scalar_one()),
        outbox_by_state=outbox_by_state,
        deviations=int(conn.execute(select(func.count()).select_from(deviations)).scalar_one()),
    )


def _holds_by_result(conn: Connection, ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    if not ids:
        return out
    for row in conn.execute(
        select(holds).where(holds.c.result_id.in_(list(ids))).order_by(holds.c.id)
    ).all():
        # detail, detail_nb and action are rendered from the reason and its params (the
        # stored texts on rows from before params existed); the screens render in their language
        out.setdefault(row.result_id, []).append(
            hold_json(
                {
                    "reason": row.reason,
                    "params": params_from_json(row.params),
                    "detail": row.detail,
                    "detail_nb": row.detail_nb,
                    "action": row.action,
                    "release_role": row.release_role,
                    "released": row.released_at is not None,
                }
            )
        )
    return out


def result_dict(row: Any, holds_: list[dict[str, Any]], *, show_patient: bool) -> dict[str, Any]:
    return {
        "id": row.id,
        "instrument": row.instrument_id,
        "test": row.test_code,
        "nlk": row.nlk_code,
        "name": row.test_name,
        "value": row.value,
        "unit": row.unit,
        "reference_range": row.reference_range,
        "flags": list(decode_flags(row.abnormal_flags)),
        "method": row.method,
        "state": row.state,
        "holds": holds_,
        "operator": row.operator_id,
        "performed_by": row.performed_by,
        "specimen": row.specimen_id,
        "patient_id": row.patient_id if show_patient else mask(row.patient_id),
        "result_status": row.result_status,
        "correction_of": row.correction_of,
        "comment": row.comment,
        "performed_at": row.performed_at.isoformat() if row.performed_at else None,
        "received_at": row.created_at.isoformat(),
    }


def list_results(
    conn: Connection,
    *,
    state: str | None = None,
    instrument: str | None = None,
    limit: int = 100,
    show_patient: bool = False,
) -> list[dict[str, Any]]:
    query = select(results).order_by(results.c.id.desc()).limit(limit)
    if state:
        query = query.where(results.c.state == state)
    if instrument:
        query = query.where(results.c.instrument_id == instrument)
    rows = conn.execute(query).all()
    by_result = _holds_by_result(conn, [r.id for r in rows])
    return [result_dict(r, by_result.get(r.id, []), show_patient=show_patient) for r in rows]


def get_result(
    conn: Connection, result_id: int, *, show_patient: bool = False
) -> dict[str, Any] | None:
    row = conn.execute(select(results).where(results.c.id == result_id)).first()
    if row is None:
        return None
    data = result_dict(
        row, _holds_by_result(conn, [row.id]).get(row.id, []), show_patient=show_patient
    )
    data["outbox"] = [
        {"id": o.id, "control_id": o.control_id, "state": o.state, "ack_code": o.ack_code}
        for o in conn.execute(
            select(outbox.c.id, outbox.c.control_id, outbox.c.state, outbox.c.ack_code)
            .join(outbox_items, outbox_items.c.outbox_id == outbox.c.id)
            .where(outbox_items.c.result_id == result_id)
            .order_by(outbox.c.id)
        ).all()
    ]
    return data


def outbox_messages(
    conn: Connection, *, state: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """The newest outbox messages (optionally of one state), with the results each carries."""
    query = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if state:
        query = query.where(outbox.c.state == state)
    rows = conn.execute(query).all()
    items: dict[int, list[int]] = {}
    if rows:
        for item in conn.execute(
            select(outbox_items.c.outbox_id, outbox_items.c.result_id)
            .where(outbox_items.c.outbox_id.in_([r.id for r in rows]))
            .order_by(outbox_items.c.result_id)
        ):
            items.setdefault(item.outbox_id, []).append(item.result_id)
    return [
        {
            "id": r.id,
            "control_id": r.control_id,
            "state": r.state,
            "results": r.n_results,
            "result_ids": items.get(r.id, []),
            "attempts": r.attempts,
            "created_at": r.created_at.isoformat(),
            "first_sent_at": r.first_sent_at.isoformat() if r.first_sent_at else None,
            "acked_at": r.acked_at.isoformat() if r.acked_at else None,
            "ack_code": r.ack_code,
            "ack_text": r.ack_text,
        }
        for r in rows
    ]


def outbox_status(conn: Connection, *, limit: int = 50) -> dict[str, Any]:
    """Counts by state, the oldest message still waiting, and the newest messages."""
    counts = {
        str(s): int(n)
        for s, n in conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state))
    }
    oldest_waiting = conn.execute(
        select(func.min(outbox.c.created_at)).where(outbox.c.state.in_(("pending", "sent")))
    ).scalar_one()
    return {
        "counts": counts,
        "oldest_waiting_at": oldest_waiting.isoformat() if oldest_waiting else None,
        "messages": outbox_messages(conn, limit=limit) if limit else [],
    }


def list_quarantine(
    conn: Connection, *, state: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    query = (
        select(quarantine, raw_messages.c.protocol, func.length(raw_messages.c.raw).label("size"))
        .join(raw_messages, raw_messages.c.id == quarantine.c.raw_message_id)
        .order_by(quarantine.c.id.desc())
        .limit(limit)
    )
    if state:
        query = query.where(quarantine.c.state == state)
    return [quarantine_dict(r._mapping, int(r.size)) for r in conn.execute(query).all()]


def get_quarantine_row(conn: Connection, quarantine_id: int) -> dict[str, Any] | None:
    """One quarantine entry as ``list_quarantine`` gives it (no bytes); None when none."""
    row = conn.execute(
        select(quarantine, raw_messages.c.protocol, func.length(raw_messages.c.raw).label("size"))
        .join(raw_messages, raw_messages.c.id == quarantine.c.raw_message_id)
        .where(quarantine.c.id == quarantine_id)
    ).first()
    return None if row is None else quarantine_dict(row._mapping, int(row.size))


def quarantine_dict(row: Any, size: int) -> dict[str, Any]:
    """One quarantine entry: the technical error, its reason code, params and English text."""
    reason, params = quarantine_code(row)
    return {
        "id": row["id"],
        "instrument": row["instrument_id"],
        "received_at": row["received_at"].isoformat(),
        "protocol": row["protocol"],
        "field": row["field"],
        "error": row["error"],
        "reason": reason,
        "params": params,
        "reason_text": quarantine_text("en", reason, params),
        "state": row["state"],
        "bytes": size,
    }


# --- CLI and demo: reads for `trygg quarantine show/replay` and the demo's reconciliation ------


@dataclass(frozen=True, slots=True)
class QuarantinedMessage:
    """One quarantine entry with the bytes as received (`trygg quarantine show`)."""

    id: int
    instrument_id: str
    received_at: datetime
    state: str
    field: str
    error: str
    raw: bytes
    #: the stored reason code and its parameters as JSON text (empty on rows before 0004)
    reason: str = ""
    params: str | None = None


def get_quarantined(conn: Connection, quarantine_id: int) -> QuarantinedMessage | None:
    row = conn.execute(
        select(quarantine, raw_messages.c.raw)
        .join(raw_messages, raw_messages.c.id == quarantine.c.raw_message_id)
        .where(quarantine.c.id == quarantine_id)
    ).first()
    if row is None:
        return None
    return QuarantinedMessage(
        id=row.id,
        instrument_id=row.instrument_id,
        received_at=row.received_at,
        state=row.state,
        field=row.field,
        error=row.error,
        raw=bytes(row.raw),
        reason=row.reason or "",
        params=row.params,
    )


def open_quarantine_ids(conn: Connection) -> list[int]:
    """The ids of the quarantine entries still open, oldest first."""
    query = select(quarantine.c.id).where(quarantine.c.state == "open").order_by(quarantine.c.id)
    return [int(qid) for qid in conn.execute(query).scalars()]


def result_keys(conn: Connection) -> set[tuple[str, str, str, str]]:
    """(instrument, specimen, test code, value) of every stored result."""
    query = select(
        results.c.instrument_id, results.c.specimen_id, results.c.test_code, results.c.value
    )
    return {(r.instrument_id, r.specimen_id, r.test_code, r.value) for r in conn.execute(query)}


def qc_result_keys(conn: Connection) -> set[tuple[str, str, str, str]]:
    """(instrument, test code, value, control lot) of every stored QC result."""
    query = select(
        qc_results.c.instrument_id,
        qc_results.c.test_code,
        qc_results.c.value,
        qc_results.c.control_lot,
    )
    return {(r.instrument_id, r.test_code, r.value, r.control_lot) for r in conn.execute(query)}


def raw_message_digests(conn: Connection) -> set[tuple[str, str]]:
    """(instrument, digest) of every stored raw message, decoded or quarantined."""
    query = select(raw_messages.c.instrument_id, raw_messages.c.digest)
    return {(r.instrument_id, r.digest) for r in conn.execute(query)}


def results_by_instrument(conn: Connection, *, state: str | None = None) -> dict[str, int]:
    """Stored results per instrument (only those in ``state`` when given)."""
    query = select(results.c.instrument_id, func.count()).group_by(results.c.instrument_id)
    if state is not None:
        query = query.where(results.c.state == state)
    return {str(i): int(n) for i, n in conn.execute(query).all()}


def qc_by_instrument(conn: Connection) -> dict[str, int]:
    """Stored QC results per instrument."""
    query = select(qc_results.c.instrument_id, func.count()).group_by(qc_results.c.instrument_id)
    return {str(i): int(n) for i, n in conn.execute(query).all()}


def list_instruments(conn: Connection) -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            "driver": r.driver,
            "url": r.url,
            "connected": bool(r.connected),
            "state": r.state_code,
            "detail": r.state_detail,
            "last_seen_at": r.last_seen_at.isoformat() if r.last_seen_at else None,
            "last_message_at": r.last_message_at.isoformat() if r.last_message_at else None,
            "messages": r.messages_received,
        }
        for r in conn.execute(select(instruments).order_by(instruments.c.id)).all()
    ]


def list_deviations(conn: Connection, *, limit: int = 100) -> list[dict[str, Any]]:
    return [
        {
            "id": r.id,
            "created_at": r.created_at.isoformat(),
            "kind": r.kind,
            "instrument": r.instrument_id,
            "result_id": r.result_id,
            "summary": r.summary,
            "detail": r.detail,
            "responsible": r.responsible_function,
            "state": r.state,
        }
        for r in conn.execute(
            select(deviations).order_by(deviations.c.id.desc()).limit(limit)
        ).all()
    ]


# --- web: store reads the dashboard and its API need ------------------------------------------


def ping(conn: Connection) -> None:
    """Ask the database one trivial question; raises when it cannot answer (/api/health)."""
    conn.execute(select(1)).scalar_one()
