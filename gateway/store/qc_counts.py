"""How much quality control happened: controls judged per verdict, lockouts opened and lifted.

Read by the demo's screen and closing summary (``gateway.demo``); plain counts over
``qc_evaluations`` and ``qc_lockouts``, optionally for one instrument.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select

from gateway.store.tables import qc_evaluations, qc_lockouts


@dataclass(frozen=True, slots=True)
class QcCounts:
    """``judged``: controls per verdict (accept, warning, reject, no_target, pass, fail);
    ``runs``: QC runs judged against a target or an expected answer (the controls of one run
    share a run key); lockouts opened and lifted."""

    judged: dict[str, int] = field(default_factory=dict)
    runs: int = 0
    lockouts_opened: int = 0
    lockouts_lifted: int = 0


def qc_counts(conn: Connection, instrument_id: str | None = None) -> QcCounts:
    """The counts, over every instrument or over ``instrument_id``'s."""
    evaluations = select(qc_evaluations.c.verdict, func.count()).group_by(qc_evaluations.c.verdict)
    runs = select(func.count(func.distinct(qc_evaluations.c.run_key))).where(
        qc_evaluations.c.verdict != "no_target"  # a control without a lot or target yet
    )
    lockouts = select(func.count(), func.count(qc_lockouts.c.lifted_at))
    if instrument_id is not None:
        evaluations = evaluations.where(qc_evaluations.c.instrument_id == instrument_id)
        runs = runs.where(qc_evaluations.c.instrument_id == instrument_id)
        lockouts = lockouts.where(qc_lockouts.c.instrument_id == instrument_id)
    judged = {str(verdict): int(n) for verdict, n in conn.execute(evaluations)}
    opened, lifted = conn.execute(lockouts).one()
    return QcCounts(
        judged=judged,
        runs=int(conn.execute(runs).scalar_one()),
        lockouts_opened=int(opened),
        lockouts_lifted=int(lifted),
    )


def open_lockout(conn: Connection, instrument_id: str, test_code: str) -> int | None:
    """The newest lockout of an instrument's test that is not lifted, if any."""
    found = conn.execute(
        select(func.max(qc_lockouts.c.id)).where(
            qc_lockouts.c.instrument_id == instrument_id,
            qc_lockouts.c.test_code == test_code,
            qc_lockouts.c.lifted_at.is_(None),
        )
    ).scalar()
    return int(found) if found is not None else None


def lockout_state(conn: Connection, instrument_id: str, test_code: str) -> tuple[int, int]:
    """(lockouts opened, lockouts lifted) of one instrument's test."""
    opened, lifted = conn.execute(
        select(func.count(), func.count(qc_lockouts.c.lifted_at)).where(
            qc_lockouts.c.instrument_id == instrument_id, qc_lockouts.c.test_code == test_code
        )
    ).one()
    return int(opened), int(lifted)


__all__ = ["QcCounts", "lockout_state", "open_lockout", "qc_counts"]
