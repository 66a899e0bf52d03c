"""The store's records behind the Noklus-style exports (``gateway.qc.noklus_export`` makes
the rows and files): control values with their evaluation, lot and corrective action, and EQA
samples with their round, per instrument and period."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, or_, select

from gateway.config import Config
from gateway.qc import noklus_export as nx
from gateway.store.tables import (
    control_lots,
    eqa_rounds,
    eqa_samples,
    qc_evaluations,
    qc_lockouts,
    qc_results,
)


def qc_records(
    conn: Connection, *, start: datetime, end: datetime, instrument_id: str = ""
) -> list[dict[str, Any]]:
    """Control values performed in [start, end) (arrival time when the instrument gave
    none), by instrument, test, level and time: the value, its evaluation's target snapshot,
    verdict and violations (none before it was judged), the control lot's material, and the
    corrective action of the lockout the value started or ended."""
    at = func.coalesce(qc_results.c.performed_at, qc_results.c.created_at)
    query = (
        select(
            qc_results.c.id,
            qc_results.c.instrument_id,
            qc_results.c.test_code,
            qc_results.c.nlk_code,
            qc_results.c.value,
            qc_results.c.unit,
            qc_results.c.control_lot,
            qc_results.c.control_level,
            qc_results.c.performed_at,
            qc_results.c.created_at,
            qc_results.c.operator_id,
            qc_results.c.performed_by,
            qc_evaluations.c.id.label("evaluation_id"),
            qc_evaluations.c.lot_id,
            qc_evaluations.c.target_mean,
            qc_evaluations.c.target_sd,
            qc_evaluations.c.verdict,
            qc_evaluations.c.violations,
        )
        .select_from(
            qc_results.outerjoin(qc_evaluations, qc_evaluations.c.qc_result_id == qc_results.c.id)
        )
        .where(at >= start, at < end)
        .order_by(
            qc_results.c.instrument_id,
            qc_results.c.test_code,
            qc_results.c.control_level,
            at,
            qc_results.c.id,
        )
    )
    if instrument_id:
        query = query.where(qc_results.c.instrument_id == instrument_id)
    rows = conn.execute(query).all()
    lots = _lots(conn)
    actions = _corrective_actions(conn, [r.evaluation_id for r in rows if r.evaluation_id])
    found: list[dict[str, Any]] = []
    for r in rows:
        lot = lots["id"].get(r.lot_id) if r.lot_id is not None else None
        if lot is None:  # not judged yet, or no lot row: the lot the instrument reported
            key = (r.test_code, r.control_level, r.control_lot)
            lot = lots["key"].get((r.instrument_id, *key)) or lots["key"].get(("", *key))
        found.append(
            {
                "instrument_id": r.instrument_id,
                "test_code": r.test_code,
                "nlk_code": r.nlk_code,
                "material": lot.material if lot is not None else "",
                "lot": r.control_lot or (lot.lot if lot is not None else ""),
                "level": r.control_level,
                "performed_at": r.performed_at or r.created_at,
                "value": r.value,
                "unit": r.unit or (lot.unit if lot is not None else ""),
                "target_mean": r.target_mean,
                "target_sd": r.target_sd,
                "verdict": r.verdict or "",
                "violations": r.violations or "",
                "operator": r.performed_by or r.operator_id,
                "corrective_action": actions.get(r.evaluation_id, ""),
            }
        )
    return found


def _lots(conn: Connection) -> dict[str, dict[Any, Any]]:
    by_id: dict[Any, Any] = {}
    by_key: dict[Any, Any] = {}
    for lot in conn.execute(select(control_lots)):
        by_id[lot.id] = lot
        by_key[(lot.instrument_id, lot.test_code, lot.level, lot.lot)] = lot
    return {"id": by_id, "key": by_key}


def _corrective_actions(conn: Connection, evaluation_ids: list[int]) -> dict[int, str]:
    """evaluation id -> the corrective action of the lockout it started or lifted."""
    if not evaluation_ids:
        return {}
    found: dict[int, str] = {}
    for chunk in range(0, len(evaluation_ids), 500):
        ids = evaluation_ids[chunk : chunk + 500]
        for lockout in conn.execute(
            select(qc_lockouts)
            .where(
                or_(
                    qc_lockouts.c.evaluation_id.in_(ids),
                    qc_lockouts.c.accepted_evaluation_id.in_(ids),
                ),
                qc_lockouts.c.corrective_action != "",
            )
            .order_by(qc_lockouts.c.id)
        ):
            for key in (lockout.evaluation_id, lockout.accepted_evaluation_id):
                if key is not None:
                    found.setdefault(int(key), str(lockout.corrective_action))
    return found


def eqa_records(
    conn: Connection,
    *,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    instrument_id: str = "",
) -> list[dict[str, Any]]:
    """EQA samples of the rounds received in [start, end) (the day the shipment was
    received, else the day it was registered, in ``zone``), by round and sample."""
    query = (
        select(
            eqa_rounds.c.id.label("round_id"),
            eqa_rounds.c.instrument_id,
            eqa_rounds.c.scheme,
            eqa_rounds.c.shipment,
            eqa_rounds.c.received_on,
            eqa_rounds.c.created_at,
            eqa_rounds.c.answered_at,
            eqa_rounds.c.answered_by,
            eqa_rounds.c.assessed_at,
            eqa_samples.c.sample,
            eqa_samples.c.test_code,
            eqa_samples.c.value,
            eqa_samples.c.unit,
            eqa_samples.c.target_value,
            eqa_samples.c.trueness,
            eqa_samples.c.accuracy,
            eqa_samples.c.precision,
        )
        .select_from(eqa_rounds.join(eqa_samples, eqa_samples.c.round_id == eqa_rounds.c.id))
        .order_by(eqa_rounds.c.instrument_id, eqa_rounds.c.id, eqa_samples.c.id)
    )
    if instrument_id:
        query = query.where(eqa_rounds.c.instrument_id == instrument_id)
    first, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    found: list[dict[str, Any]] = []
    for r in conn.execute(query):
        day = r.received_on or r.created_at.astimezone(zone).date()
        if first <= day < last:
            found.append(dict(r._mapping))
    return found


def export_file(
    conn: Connection,
    config: Config,
    *,
    kind: str,
    first: date,
    last: date,
    instrument: str = "",
    fmt: str = "csv",
    decimal: str = "comma",
) -> tuple[bytes, int]:
    """One export's bytes and its number of rows: ``kind`` qc or eqa, the days ``first`` to
    ``last`` (both included, in the site's zone), ``fmt`` csv or xlsx (the CLI and the web's
    /qc/export share it)."""
    zone = ZoneInfo(config.site.timezone)
    start, end = nx.period_bounds(first, last, zone)
    if kind == "qc":
        rows = nx.qc_rows(qc_records(conn, start=start, end=end, instrument_id=instrument), config)
    else:
        records = eqa_records(conn, start=start, end=end, zone=zone, instrument_id=instrument)
        rows = nx.eqa_rows(records, config)
    columns = nx.COLUMNS[kind]
    if fmt == "xlsx":
        return nx.write_xlsx(rows, columns, zone=zone, title=kind.upper()), len(rows)
    point: Literal["comma", "point"] = "point" if decimal == "point" else "comma"
    return nx.write_csv(rows, columns, zone=zone, decimal=point), len(rows)
