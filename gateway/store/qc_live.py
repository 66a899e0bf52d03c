"""Judging control values as they are stored: the lot and target, the run, the Westgard rules,
the fixed allowed deviation, and the QC status (``gateway.store.qc_state``) that follows.

Runs inside the ingest job, so it stays cheap: a control costs a few indexed reads (its lot,
the open run, the level histories of that instrument's test) and one insert. QC values are few
beside patient results; nothing here runs per patient result.

How the engine sees the history: every stored value is turned into its z-score under the target
it was judged against (the snapshot), and handed to the engine as ``Control(z, Target(0, 1,
key))``. ``key`` names the lot and target (``lot:target``), so the engine restarts a level's
history on a new lot or a new target, as it does by ``Target`` equality; a rolling target keeps
one key per lot (it moves with every run, and its history must not restart each time). The
history also restarts after a lockout: the run that failed was acted on (a corrective action),
and the runs after it are judged afresh.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, insert, select

from gateway.config import QcConfig
from gateway.qc import qualitative
from gateway.qc import targets as qc_targets_math
from gateway.qc.runs import OpenRun, assign
from gateway.qc.status import worst
from gateway.qc.westgard import DEFAULT_RULES, Control, Run, Target, evaluate, parse_rules
from gateway.rules import RuleContext
from gateway.store import qc_lots, qc_state
from gateway.store.tables import qc_evaluations, qc_lockouts, qc_results
from gateway.store.writer import Tx

SYSTEM = "system"
#: evaluations read back for a test's history: the longest rule (12x) over up to four levels
_HISTORY_ROWS = 12 * 4 * 2
_JUDGED = ("accept", "warning", "reject")


@dataclass(frozen=True, slots=True)
class Judged:
    """One control's evaluation as written (for the status step that follows)."""

    evaluation_id: int
    instrument_id: str
    test_code: str
    level: str
    run_key: str
    verdict: str
    performed_at: datetime | None


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text.strip().replace(",", "."))
    except (InvalidOperation, AttributeError):
        return None
    return value if value.is_finite() else None


def _open_run(tx: Tx, instrument_id: str, test_code: str) -> OpenRun | None:
    newest = tx.conn.execute(
        select(qc_evaluations.c.run_key)
        .where(
            qc_evaluations.c.instrument_id == instrument_id,
            qc_evaluations.c.test_code == test_code,
        )
        .order_by(qc_evaluations.c.id.desc())
        .limit(1)
    ).scalar()
    if newest is None:
        return None
    rows = list(
        tx.conn.execute(
            select(qc_evaluations.c.level, qc_evaluations.c.performed_at, qc_evaluations.c.id)
            .where(qc_evaluations.c.run_key == newest)
            .order_by(qc_evaluations.c.id)
        )
    )
    started = rows[0].performed_at or tx.now
    return OpenRun(newest, _aware(started), frozenset(r.level for r in rows))


def _aware(at: datetime) -> datetime:
    from datetime import UTC

    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _restart_after(tx: Tx, instrument_id: str, test_code: str) -> int:
    """The evaluation id after which the history counts (the newest lockout's failing run)."""
    found = tx.conn.execute(
        select(func.max(qc_lockouts.c.evaluation_id)).where(
            qc_lockouts.c.instrument_id == instrument_id, qc_lockouts.c.test_code == test_code
        )
    ).scalar()
    return int(found or 0)


def _target_key(lot_id: int | None, target_id: int | None, source: str) -> str:
    return f"{lot_id}:rolling" if source == "rolling" else f"{lot_id}:{target_id}"


def _history(
    tx: Tx, instrument_id: str, test_code: str
) -> tuple[list[tuple[str, str, float, str, int]], int]:
    """(run key, level, z, target key, qc_result id) of the test's recent judged values,
    oldest first, after the last restart; and the restart id."""
    restart = _restart_after(tx, instrument_id, test_code)
    rows = list(
        tx.conn.execute(
            select(
                qc_evaluations.c.run_key,
                qc_evaluations.c.level,
                qc_evaluations.c.z,
                qc_evaluations.c.lot_id,
                qc_evaluations.c.target_id,
                qc_evaluations.c.target_source,
                qc_evaluations.c.qc_result_id,
            )
            .where(
                qc_evaluations.c.instrument_id == instrument_id,
                qc_evaluations.c.test_code == test_code,
                qc_evaluations.c.id > restart,
                qc_evaluations.c.verdict.in_(_JUDGED),
                qc_evaluations.c.z.is_not(None),
            )
            .order_by(qc_evaluations.c.id.desc())
            .limit(_HISTORY_ROWS)
        )
    )
    rows.reverse()
    return [
        (
            r.run_key,
            r.level,
            float(r.z),
            _target_key(r.lot_id, r.target_id, r.target_source),
            int(r.qc_result_id),
        )
        for r in rows
    ], restart


def _runs(points: Sequence[tuple[str, str, float, str, int]]) -> list[Run]:
    by_run: dict[str, dict[str, Control]] = {}
    for run_key, level, z, key, _ in points:
        by_run.setdefault(run_key, {})[level] = Control(z, Target(0.0, 1.0, key))
    return [Run(key, controls) for key, controls in by_run.items()]


def _lot_values(tx: Tx, lot: qc_lots.Lot, *, judged_only: bool) -> list[Decimal]:
    """The lot's stored values in time order (judged: only those accepted or warned)."""
    query = (
        select(qc_results.c.value)
        .join(qc_evaluations, qc_evaluations.c.qc_result_id == qc_results.c.id)
        .where(qc_evaluations.c.lot_id == lot.id)
        .order_by(qc_evaluations.c.id)
    )
    if judged_only:
        query = query.where(qc_evaluations.c.verdict.in_(("accept", "warning")))
    values = [_decimal(v) for v in tx.conn.execute(query).scalars()]
    return [v for v in values if v is not None]


def _collect_first_n(tx: Tx, lot: qc_lots.Lot, n: int) -> None:
    """Source first_n: once the lot has ``n`` values, their mean and SD become its target."""
    values = _lot_values(tx, lot, judged_only=False)
    if len(values) < n:
        return
    try:
        mean, sd = qc_targets_math.mean_sd(values[:n])
    except ValueError:
        return  # identical values: no SD yet; keep collecting
    qc_lots.set_target(
        tx, lot.id, mean=mean, sd=sd, source="first_n", person=SYSTEM, n=n, note=f"first {n}"
    )


def _roll(tx: Tx, lot: qc_lots.Lot, n: int) -> None:
    """Source rolling: the mean and SD of the lot's last ``n`` accepted values."""
    values = _lot_values(tx, lot, judged_only=True)
    if len(values) < n:
        return
    try:
        mean, sd = qc_targets_math.mean_sd(values[-n:])
    except ValueError:
        return
    current = lot.target
    if current is not None and (current.mean, current.sd) == (mean, sd):
        return
    qc_lots.set_target(tx, lot.id, mean=mean, sd=sd, source="rolling", person=SYSTEM, n=n)


def _lot_for(tx: Tx, row: Any) -> qc_lots.Lot:
    """The control's lot; one the instrument reports but nobody registered is registered now
    (actor system), so it shows up for the quality manager to give it a target."""
    found = qc_lots.find_lot(
        tx.conn, row.instrument_id, row.test_code, row.control_level, row.control_lot
    )
    if found is not None:
        return found
    numeric = _decimal(row.value) is not None
    lot_id = qc_lots.add_lot(
        tx,
        instrument_id=row.instrument_id,
        test_code=row.test_code,
        level=row.control_level or "",
        lot=row.control_lot or "",
        person=SYSTEM,
        unit=row.unit or "",
        kind="quantitative" if numeric else "qualitative",
    )
    lot = qc_lots.get_lot(tx.conn, lot_id)
    assert lot is not None
    return lot


def _violation_json(
    violations: Sequence[Any], ids: dict[tuple[str, str], int]
) -> list[dict[str, Any]]:
    out = []
    for v in violations:
        involved = [
            ids[(run, level)] for run in v.runs for level in v.levels if (run, level) in ids
        ]
        out.append(
            {
                "rule": v.rule,
                "kind": v.kind,
                "error_type": v.error_type,
                "scope": v.scope,
                "levels": list(v.levels),
                # the values involved (qc_results ids: what a chart marks), and their runs
                "runs": sorted(set(involved)),
                "run_keys": list(v.runs),
            }
        )
    return out


def _judge_one(tx: Tx, row: Any, run_key: str, qc: QcConfig | None) -> Judged:
    lot = _lot_for(tx, row)
    record: dict[str, Any] = {
        "qc_result_id": row.id,
        "instrument_id": row.instrument_id,
        "test_code": row.test_code,
        "level": row.control_level or "",
        "lot_id": lot.id,
        "run_key": run_key,
        "target_id": None,
        "target_mean": None,
        "target_sd": None,
        "target_source": "",
        "z": None,
        "verdict": "no_target",
        "violations": "[]",
        "allowed_ok": None,
        "rules": "",
        "evaluated_at": tx.now,
        "performed_at": row.performed_at,
    }
    value = _decimal(row.value)
    if lot.kind == "qualitative":
        if lot.expected:
            record["verdict"] = qualitative.judge(row.value, lot.expected)
    elif value is not None:
        source = lot.target_source or (qc.target_source if qc else "manufacturer")
        n = lot.first_n or (qc.first_n if qc else 20)
        target = lot.target
        if target is None and source in ("first_n", "rolling"):
            # record first, so the Nth value counts among the N
            record["target_source"] = source
            _insert(tx, record)
            _collect_first_n(tx, lot, n)
            return _judged(tx, record)
        if target is not None:
            _judge_quantitative(tx, record, row, value, lot, target, qc)
    _insert(tx, record)
    if (
        lot.kind == "quantitative"
        and lot.target is not None
        and (lot.target_source or (qc.target_source if qc else "")) == "rolling"
        and record["verdict"] in ("accept", "warning")
    ):
        _roll(tx, lot, lot.first_n or (qc.first_n if qc else 20))
    return _judged(tx, record)


def _judge_quantitative(
    tx: Tx,
    record: dict[str, Any],
    row: Any,
    value: Decimal,
    lot: qc_lots.Lot,
    target: qc_lots.TargetRow,
    qc: QcConfig | None,
) -> None:
    z = qc_targets_math.z_score(value, target.mean, target.sd)
    spec = qc.rules if qc else DEFAULT_RULES
    rules = parse_rules(spec, strict_r4s=qc.strict_r4s if qc else False)
    level = record["level"]
    points, _ = _history(tx, row.instrument_id, row.test_code)
    key = _target_key(lot.id, target.id, target.source)
    earlier = [p for p in points if p[0] != record["run_key"]]
    same_run = [p for p in points if p[0] == record["run_key"] and p[1] != level]
    newest = Run(
        record["run_key"],
        {
            **{p[1]: Control(p[2], Target(0.0, 1.0, p[3])) for p in same_run},
            level: Control(float(z), Target(0.0, 1.0, key)),
        },
    )
    result = evaluate(_runs(earlier), newest, rules)
    mine = [v for v in result.violations if level in v.levels]
    ids = {(p[0], p[1]): p[4] for p in points}
    ids[(record["run_key"], level)] = int(row.id)
    found = _violation_json(mine, ids)
    verdict = (
        "reject" if any(v.kind == "reject" for v in mine) else ("warning" if mine else "accept")
    )
    ok = None
    if qc is not None:
        ok = qc_targets_math.allowed_ok(
            value,
            target.mean,
            allowed_percent=qc.allowed_percent,
            allowed_absolute=qc.allowed_absolute,
        )
    if ok is False:
        verdict = "reject"
        found.append(
            {
                "rule": "allowed",
                "kind": "reject",
                "error_type": "systematic",
                "scope": "point",
                "levels": [level],
                "runs": [int(row.id)],
                "run_keys": [record["run_key"]],
            }
        )
    record.update(
        target_id=target.id,
        target_mean=str(target.mean),
        target_sd=str(target.sd),
        target_source=target.source,
        z=str(z),
        verdict=verdict,
        violations=json.dumps(found, ensure_ascii=False),
        allowed_ok=ok,
        rules=",".join(r.name for r in rules),
    )


def _insert(tx: Tx, record: dict[str, Any]) -> None:
    record["id"] = int(
        tx.conn.execute(
            insert(qc_evaluations).returning(qc_evaluations.c.id),
            {k: v for k, v in record.items() if k != "id"},
        ).scalar_one()
    )


def _judged(tx: Tx, record: dict[str, Any]) -> Judged:
    del tx
    return Judged(
        record["id"],
        record["instrument_id"],
        record["test_code"],
        record["level"],
        record["run_key"],
        record["verdict"],
        record["performed_at"],
    )


def evaluate_controls(tx: Tx, qc_ids: Sequence[int], context: RuleContext) -> list[Judged]:
    """Judge the stored controls ``qc_ids`` (one ingest job's) in ``tx``, then move the QC
    status of every (instrument, test) with a `[[qc]]` entry whose run they touched. The
    evaluations written, in order."""
    if not qc_ids:
        return []
    rows = list(
        tx.conn.execute(
            select(qc_results)
            .where(qc_results.c.id.in_(list(qc_ids)))
            .order_by(qc_results.c.performed_at, qc_results.c.id)
        )
    )
    by_test: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        by_test.setdefault((row.instrument_id, row.test_code), []).append(row)
    judged: list[Judged] = []
    for (instrument_id, test_code), group in by_test.items():
        qc = context.qc.get((instrument_id, test_code))
        window = qc.run_window_minutes if qc else 60
        names = [f"{instrument_id}:{test_code}:{r.id}" for r in group]
        keys, _ = assign(
            _open_run(tx, instrument_id, test_code),
            [(r.control_level or "", _aware(r.performed_at or tx.now)) for r in group],
            window,
            names.__getitem__,
        )
        touched: dict[str, Judged] = {}
        for row, key in zip(group, keys, strict=True):
            one = _judge_one(tx, row, key, qc)
            judged.append(one)
            touched[key] = one
        if qc is None:
            continue  # judged, but without a [[qc]] entry there is no status and no lockout
        for key, last in touched.items():
            _step(tx, last, key, qc, context)
    return judged


def _step(tx: Tx, last: Judged, run_key: str, qc: QcConfig, context: RuleContext) -> None:
    """Move the status for a run: its worst verdict so far; complete when it holds every
    configured level (or any, when `levels` is empty)."""
    rows = list(
        tx.conn.execute(
            select(
                qc_evaluations.c.id,
                qc_evaluations.c.level,
                qc_evaluations.c.verdict,
                qc_evaluations.c.violations,
            )
            .where(qc_evaluations.c.run_key == run_key)
            .order_by(qc_evaluations.c.id)
        )
    )
    verdicts = [r.verdict for r in rows if r.verdict != "no_target"]
    if not verdicts:
        qc_state.run_seen(tx, last.instrument_id, last.test_code, qc, last.performed_at)
        return
    levels = {r.level for r in rows if r.verdict != "no_target"}
    complete = set(qc.levels) <= levels if qc.levels else True
    fired = sorted(
        {v["rule"] for r in rows for v in json.loads(r.violations or "[]") if v["kind"] == "reject"}
        | {"fail" for r in rows if r.verdict == "fail"}
    )
    qc_state.apply_run(
        tx,
        last.instrument_id,
        last.test_code,
        qc,
        event=worst(verdicts),
        # the lockout names the failing value's evaluation (its rules), else the run's last
        evaluation_id=next(
            (int(r.id) for r in rows if r.verdict in ("reject", "fail")), last.evaluation_id
        ),
        performed_at=last.performed_at,
        complete=complete,
        rules=fired,
        zone=context.zone,
    )
