"""What the QC pages read: status per instrument and test, evaluations, lockouts (issue 11).

Read-only functions over the QC tables for ``gateway.web.routes.qc`` and the dashboard. They
return plain frozen rows; times are aware (UTC). QC rows carry no patient data; a lockout's
held results are listed by id, state and time only (a result's page, with its access log,
shows the rest).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select

from gateway.model import HoldReason
from gateway.store import qc_state
from gateway.store.qc_state import Lockout
from gateway.store.tables import (
    control_lots,
    holds,
    qc_evaluations,
    qc_lockouts,
    qc_results,
    qc_status,
    results,
)


@dataclass(frozen=True, slots=True)
class StatusRow:
    """``qc_status``'s row for one instrument and test (None: no controls judged yet), with
    the newest evaluation's verdict and time."""

    instrument_id: str
    test_code: str
    status: str | None
    since: datetime | None
    last_run_at: datetime | None
    last_accepted_at: datetime | None
    due_at: datetime | None
    lockout_id: int | None
    last_verdict: str | None
    last_evaluated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Violation:
    """One Westgard rule (or a qualitative mismatch) that fired, as stored."""

    rule: str
    kind: str
    levels: tuple[str, ...]
    runs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EvaluationRow:
    """One judged control value: what came in, against which lot and target, and the verdict."""

    id: int
    qc_result_id: int
    instrument_id: str
    test_code: str
    level: str
    lot_id: int | None
    lot: str
    value: str
    unit: str
    target_mean: str | None
    target_sd: str | None
    target_source: str
    z: str | None
    verdict: str
    violations: tuple[Violation, ...]
    allowed_ok: bool | None
    rules: str
    run_key: str
    performed_at: datetime | None
    evaluated_at: datetime
    performed_by: str
    source: str


@dataclass(frozen=True, slots=True)
class HeldResult:
    """A patient result held for a lockout (no patient data: the result page shows that)."""

    result_id: int
    state: str
    held_at: datetime
    released_at: datetime | None
    released_by: str


@dataclass(frozen=True, slots=True)
class LockoutDetail:
    """A lockout with the run that failed (every control of it), the accepted run's
    evaluation once there, and the patient results it held."""

    lockout: Lockout
    failing: tuple[EvaluationRow, ...]
    accepted: EvaluationRow | None
    held: tuple[HeldResult, ...]

    @property
    def open_holds(self) -> int:
        return sum(1 for h in self.held if h.released_at is None)


# --- status ------------------------------------------------------------------------------------


def status_rows(conn: Connection, pairs: Sequence[tuple[str, str]] = ()) -> list[StatusRow]:
    """A row for each of ``pairs`` (instrument, test: the configured ones, in order) and then
    for every other pair the store has a status for, sorted."""
    stored = {(r.instrument_id, r.test_code): r for r in conn.execute(select(qc_status)).all()}
    newest: dict[tuple[str, str], Any] = {}
    latest = (
        select(
            qc_evaluations.c.instrument_id,
            qc_evaluations.c.test_code,
            qc_evaluations.c.verdict,
            qc_evaluations.c.evaluated_at,
        )
        .order_by(qc_evaluations.c.id.desc())
        .limit(10_000)  # the newest per pair is among the last few thousand
    )
    for found in conn.execute(latest):
        newest.setdefault((found.instrument_id, found.test_code), found)
    wanted = list(dict.fromkeys([*pairs, *sorted(set(stored) - set(pairs))]))
    out: list[StatusRow] = []
    for pair in wanted:
        row: Any = stored.get(pair)
        evaluation = newest.get(pair)
        out.append(
            StatusRow(
                instrument_id=pair[0],
                test_code=pair[1],
                status=None if row is None else str(row.status),
                since=None if row is None else row.since,
                last_run_at=None if row is None else row.last_run_at,
                last_accepted_at=None if row is None else row.last_accepted_at,
                due_at=None if row is None else row.due_at,
                lockout_id=None if row is None or row.lockout_id is None else int(row.lockout_id),
                last_verdict=None if evaluation is None else str(evaluation.verdict),
                last_evaluated_at=None if evaluation is None else evaluation.evaluated_at,
            )
        )
    return out


# --- evaluations -------------------------------------------------------------------------------


def _violations(text: str) -> tuple[Violation, ...]:
    """The stored JSON list of violations; an entry is a rule name or an object."""
    try:
        found = json.loads(text or "[]")
    except ValueError:
        return ()
    out: list[Violation] = []
    for item in found if isinstance(found, list) else []:
        if isinstance(item, str):
            out.append(Violation(item, "", (), ()))
        elif isinstance(item, dict):
            out.append(
                Violation(
                    str(item.get("rule", "")),
                    str(item.get("kind", "")),
                    tuple(str(x) for x in item.get("levels", ()) or ()),
                    tuple(str(x) for x in item.get("runs", ()) or ()),
                )
            )
    return tuple(out)


_EVALUATION = (
    select(
        qc_evaluations,
        qc_results.c.value,
        qc_results.c.unit,
        qc_results.c.control_lot,
        qc_results.c.performed_by,
        qc_results.c.source,
        control_lots.c.lot.label("lot_name"),
    )
    .join(qc_results, qc_results.c.id == qc_evaluations.c.qc_result_id)
    .outerjoin(control_lots, control_lots.c.id == qc_evaluations.c.lot_id)
)


def _evaluation(row: Any) -> EvaluationRow:
    return EvaluationRow(
        id=int(row.id),
        qc_result_id=int(row.qc_result_id),
        instrument_id=row.instrument_id,
        test_code=row.test_code,
        level=row.level,
        lot_id=None if row.lot_id is None else int(row.lot_id),
        lot=row.lot_name or row.control_lot,
        value=row.value,
        unit=row.unit,
        target_mean=row.target_mean,
        target_sd=row.target_sd,
        target_source=row.target_source,
        z=row.z,
        verdict=row.verdict,
        violations=_violations(row.violations),
        allowed_ok=row.allowed_ok,
        rules=row.rules,
        run_key=row.run_key,
        performed_at=row.performed_at,
        evaluated_at=row.evaluated_at,
        performed_by=row.performed_by,
        source=row.source,
    )


def recent_evaluations(
    conn: Connection,
    *,
    instrument_id: str | None = None,
    test_code: str | None = None,
    flagged_only: bool = False,
    limit: int = 20,
) -> list[EvaluationRow]:
    """The newest evaluations first; ``flagged_only``: those with a violation or a verdict
    other than accept/pass."""
    query = _EVALUATION
    if instrument_id is not None:
        query = query.where(qc_evaluations.c.instrument_id == instrument_id)
    if test_code is not None:
        query = query.where(qc_evaluations.c.test_code == test_code)
    if flagged_only:
        query = query.where(
            (qc_evaluations.c.violations != "[]")
            | qc_evaluations.c.verdict.not_in(("accept", "pass"))
        )
    rows = conn.execute(query.order_by(qc_evaluations.c.id.desc()).limit(limit)).all()
    return [_evaluation(r) for r in rows]


def evaluation_for(conn: Connection, qc_result_id: int) -> EvaluationRow | None:
    """The evaluation of one stored control value (None: not judged)."""
    row = conn.execute(_EVALUATION.where(qc_evaluations.c.qc_result_id == qc_result_id)).first()
    return None if row is None else _evaluation(row)


def _run_of(conn: Connection, evaluation_id: int) -> tuple[EvaluationRow, ...]:
    """Every control of the run ``evaluation_id`` belongs to (same instrument, test, run key)."""
    first = conn.execute(_EVALUATION.where(qc_evaluations.c.id == evaluation_id)).first()
    if first is None:
        return ()
    rows = conn.execute(
        _EVALUATION.where(
            and_(
                qc_evaluations.c.instrument_id == first.instrument_id,
                qc_evaluations.c.test_code == first.test_code,
                qc_evaluations.c.run_key == first.run_key,
            )
        ).order_by(qc_evaluations.c.level, qc_evaluations.c.id)
    ).all()
    return tuple(_evaluation(r) for r in rows)


# --- lockouts ----------------------------------------------------------------------------------


def list_lockouts(conn: Connection, *, open_only: bool = False, limit: int = 50) -> list[Lockout]:
    """Lockouts, newest first; ``open_only``: those not lifted."""
    return qc_state.list_lockouts(conn, open_only=open_only, limit=limit)


def held_results(conn: Connection, lockout: Lockout) -> list[HeldResult]:
    """The patient results held ``qc_lockout`` on the lockout's instrument and test since it
    started (until the next lockout of that pair started), oldest first."""
    later = conn.execute(
        select(qc_lockouts.c.started_at)
        .where(
            qc_lockouts.c.instrument_id == lockout.instrument_id,
            qc_lockouts.c.test_code == lockout.test_code,
            qc_lockouts.c.id > lockout.id,
        )
        .order_by(qc_lockouts.c.id)
        .limit(1)
    ).scalar()
    query = (
        select(
            results.c.id,
            results.c.state,
            holds.c.created_at,
            holds.c.released_at,
            holds.c.released_by,
        )
        .join(holds, holds.c.result_id == results.c.id)
        .where(
            holds.c.reason == HoldReason.QC_LOCKOUT.value,
            results.c.instrument_id == lockout.instrument_id,
            results.c.test_code == lockout.test_code,
            holds.c.created_at >= lockout.started_at,
        )
    )
    if later is not None:
        query = query.where(holds.c.created_at < later)
    rows = conn.execute(query.order_by(holds.c.id)).all()
    return [
        HeldResult(int(r.id), r.state, r.created_at, r.released_at, r.released_by or "")
        for r in rows
    ]


def lockout_detail(conn: Connection, lockout_id: int) -> LockoutDetail | None:
    """A lockout with its failing run, accepted run and held results; None: no such lockout."""
    lockout = qc_state.get_lockout(conn, lockout_id)
    if lockout is None:
        return None
    failing = () if lockout.evaluation_id is None else _run_of(conn, lockout.evaluation_id)
    accepted = None
    if lockout.accepted_evaluation_id is not None:
        found = conn.execute(
            _EVALUATION.where(qc_evaluations.c.id == lockout.accepted_evaluation_id)
        ).first()
        accepted = None if found is None else _evaluation(found)
    return LockoutDetail(lockout, failing, accepted, tuple(held_results(conn, lockout)))
