"""QC status and lockouts in the store: where each instrument's QC for a test stands, the
lockout that a failure (or a missed schedule) opens, and its lift.

The status moves by the state table in ``gateway.qc.status``; every change that rules read
(status, due time, lockout) bumps the facts version in the same transaction and announces a
``qc_status`` event. A lockout opens with a deviation (category equipment, kind
``qc_failure`` or ``qc_overdue``). It lifts only when an accepted run came after it AND a
corrective action is documented (signed by a supervisor or quality manager); results held
``qc_lockout`` stay held after the lift until a supervisor or quality manager releases them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, insert, or_, select, update

from gateway.config import QcConfig
from gateway.deviations import record as record_deviation
from gateway.deviations.categories import Category
from gateway.model import Deviation, HoldReason
from gateway.qc.schedule import count_due, due_after, is_overdue
from gateway.qc.status import Event, lifts, next_status
from gateway.rules.facts import QcFact, QcStatus
from gateway.store import facts as store_facts
from gateway.store.tables import (
    deviation_events,
    deviations,
    holds,
    qc_evaluations,
    qc_lockouts,
    qc_status,
    results,
)
from gateway.store.writer import Tx

SYSTEM = "system"
#: who may document a corrective action (and so lift a lockout)
CORRECTIVE_ROLES = ("supervisor", "quality_manager")


@dataclass(frozen=True, slots=True)
class StatusRow:
    """An instrument's QC for one test, as the status page and ``trygg qc status`` show it."""

    instrument_id: str
    test_code: str
    status: QcStatus
    since: datetime | None
    last_run_at: datetime | None
    last_accepted_at: datetime | None
    due_at: datetime | None
    patients_since: int
    lockout_id: int | None
    schedule: str
    lockout_mode: str


@dataclass(frozen=True, slots=True)
class Lockout:
    """A QC lockout: why, since when, and how far its lift has come."""

    id: int
    instrument_id: str
    test_code: str
    cause: str
    started_at: datetime
    evaluation_id: int | None
    deviation_id: int | None
    accepted_evaluation_id: int | None
    accepted_at: datetime | None
    corrective_action: str
    corrective_action_at: datetime | None
    corrective_action_by: str
    lifted_at: datetime | None
    lifted_by: str
    #: the reject rules that fired on the failing run ("" for an overdue lockout)
    rules: str = ""

    @property
    def is_open(self) -> bool:
        return self.lifted_at is None


def _aware(at: datetime | None) -> datetime | None:
    if at is None:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


# --- reading ---------------------------------------------------------------------------------


def _rules_of(violations: str | None) -> str:
    found = [v["rule"] for v in json.loads(violations or "[]") if v.get("kind") == "reject"]
    return ",".join(dict.fromkeys(found))


def _lockout(row: Any) -> Lockout:
    return Lockout(
        id=int(row.id),
        instrument_id=row.instrument_id,
        test_code=row.test_code,
        cause=row.cause,
        started_at=_aware(row.started_at) or row.started_at,
        evaluation_id=row.evaluation_id,
        deviation_id=row.deviation_id,
        accepted_evaluation_id=row.accepted_evaluation_id,
        accepted_at=_aware(row.accepted_at),
        corrective_action=row.corrective_action or "",
        corrective_action_at=_aware(row.corrective_action_at),
        corrective_action_by=row.corrective_action_by or "",
        lifted_at=_aware(row.lifted_at),
        lifted_by=row.lifted_by or "",
        rules=_rules_of(row.violations),
    )


_LOCKOUT_QUERY = select(qc_lockouts, qc_evaluations.c.violations).outerjoin(
    qc_evaluations, qc_evaluations.c.id == qc_lockouts.c.evaluation_id
)


def get_lockout(conn: Connection, lockout_id: int) -> Lockout | None:
    """One lockout, or None."""
    row = conn.execute(_LOCKOUT_QUERY.where(qc_lockouts.c.id == lockout_id)).first()
    return _lockout(row) if row is not None else None


def list_lockouts(
    conn: Connection,
    *,
    open_only: bool = False,
    instrument_id: str | None = None,
    limit: int | None = None,
) -> list[Lockout]:
    """Lockouts, newest first; ``open_only``: those not lifted; ``limit``: at most that many."""
    query = _LOCKOUT_QUERY.order_by(qc_lockouts.c.id.desc())
    if open_only:
        query = query.where(qc_lockouts.c.lifted_at.is_(None))
    if instrument_id is not None:
        query = query.where(qc_lockouts.c.instrument_id == instrument_id)
    if limit is not None:
        query = query.limit(limit)
    return [_lockout(row) for row in conn.execute(query)]


def load_qc_facts(conn: Connection) -> dict[tuple[str, str], QcFact]:
    """Every qc_status row as a rule fact (one query; run once per facts change)."""
    query = (
        select(qc_status, qc_evaluations.c.violations)
        .outerjoin(qc_lockouts, qc_lockouts.c.id == qc_status.c.lockout_id)
        .outerjoin(qc_evaluations, qc_evaluations.c.id == qc_lockouts.c.evaluation_id)
    )
    return {
        (row.instrument_id, row.test_code): QcFact(
            status=QcStatus(row.status),
            since=_aware(row.since) or row.since,
            due_at=_aware(row.due_at),
            lockout_id=row.lockout_id,
            rules=_rules_of(row.violations),
        )
        for row in conn.execute(query)
    }


def list_status(conn: Connection, qc: Mapping[tuple[str, str], QcConfig]) -> list[StatusRow]:
    """The status of every (instrument, test) with a `[[qc]]` entry (``RuleContext.qc``);
    one never judged is ``no_qc``. Sorted by instrument and test."""
    rows = {(r.instrument_id, r.test_code): r for r in conn.execute(select(qc_status))}
    out: list[StatusRow] = []
    for key in sorted(qc):
        entry = qc[key]
        row = rows.get(key)
        out.append(
            StatusRow(
                instrument_id=key[0],
                test_code=key[1],
                status=QcStatus(row.status) if row else QcStatus.NO_QC,
                since=_aware(row.since) if row else None,
                last_run_at=_aware(row.last_run_at) if row else None,
                last_accepted_at=_aware(row.last_accepted_at) if row else None,
                due_at=_aware(row.due_at) if row else None,
                patients_since=int(row.patients_since or 0) if row else 0,
                lockout_id=row.lockout_id if row else None,
                schedule=entry.schedule,
                lockout_mode=entry.lockout,
            )
        )
    return out


# --- writing ---------------------------------------------------------------------------------


def _row(tx: Tx, instrument_id: str, test_code: str, qc: QcConfig) -> dict[str, Any]:
    """The status row (created no_qc when missing), as a dict to change and write back."""
    found = (
        tx.conn.execute(
            select(qc_status).where(
                qc_status.c.instrument_id == instrument_id, qc_status.c.test_code == test_code
            )
        )
        .mappings()
        .first()
    )
    if found is not None:
        return dict(found)
    row: dict[str, Any] = {
        "instrument_id": instrument_id,
        "test_code": test_code,
        "status": QcStatus.NO_QC.value,
        "since": tx.now,
        "last_run_at": None,
        "last_accepted_at": None,
        "due_at": None,
        "patients_since": 0,
        "lockout_id": None,
        "updated_at": tx.now,
        "schedule": qc.schedule,
    }
    tx.conn.execute(insert(qc_status), row)
    return dict(row)


_FACT_FIELDS = ("status", "due_at", "lockout_id")


def _write(tx: Tx, before: dict[str, Any], after: dict[str, Any], *, reason: str = "") -> None:
    """Write the row back; when a rule fact changed: bump, audit, announce."""
    after["updated_at"] = tx.now
    tx.conn.execute(
        update(qc_status)
        .where(
            qc_status.c.instrument_id == after["instrument_id"],
            qc_status.c.test_code == after["test_code"],
        )
        .values({k: v for k, v in after.items() if k not in ("instrument_id", "test_code")})
    )
    if all(_same(before.get(k), after.get(k)) for k in _FACT_FIELDS):
        return
    store_facts.bump(tx)
    key = f"{after['instrument_id']}/{after['test_code']}"
    if before.get("status") != after["status"]:
        tx.audit(
            actor=SYSTEM,
            action="qc.status",
            entity="qc_status",
            entity_id=key,
            reason=reason,
            before={"status": before.get("status")},
            after={"status": after["status"], "lockout": after.get("lockout_id")},
        )
    due = _aware(after.get("due_at"))
    tx.event(
        "qc_status",
        str(after["instrument_id"]),
        {
            "test": after["test_code"],
            "status": after["status"],
            "due_at": due.isoformat() if due else None,
            "lockout": after.get("lockout_id"),
        },
    )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, datetime) and isinstance(b, datetime):
        return _aware(a) == _aware(b)
    return bool(a == b)


def _open_lockout(
    tx: Tx,
    instrument_id: str,
    test_code: str,
    *,
    cause: str,
    evaluation_id: int | None,
    rules: list[str],
) -> int:
    """A lockout row and its deviation; the lockout's id."""
    from gateway.catalogue import FALLBACK_LANGUAGE, text

    kind = "qc_failure" if cause == QcStatus.OUT_OF_CONTROL.value else "qc_overdue"
    summary = text(
        FALLBACK_LANGUAGE,
        f"qc.deviation.{kind}",
        instrument=instrument_id,
        test=test_code,
        rules=", ".join(rules) or "-",
    )
    deviation_id = record_deviation(
        tx,
        Deviation(
            kind=kind,
            summary=summary,
            category=Category.EQUIPMENT.value,
            instrument_id=instrument_id,
        ),
        actor=SYSTEM,
    )
    lockout_id = int(
        tx.conn.execute(
            insert(qc_lockouts).returning(qc_lockouts.c.id),
            {
                "instrument_id": instrument_id,
                "test_code": test_code,
                "cause": cause,
                "started_at": tx.now,
                "evaluation_id": evaluation_id,
                "deviation_id": deviation_id,
                "corrective_action": "",
                "corrective_action_by": "",
                "lifted_by": "",
            },
        ).scalar_one()
    )
    tx.audit(
        actor=SYSTEM,
        action="qc.lockout_opened",
        entity="qc_lockout",
        entity_id=lockout_id,
        reason=summary,
        after={"cause": cause, "rules": rules, "deviation": deviation_id},
    )
    return lockout_id


def _apply(
    tx: Tx,
    row: dict[str, Any],
    qc: QcConfig,
    event: Event,
    *,
    evaluation_id: int | None = None,
    rules: list[str] | None = None,
) -> dict[str, Any]:
    """The state table's step on ``row`` (a copy changed; a lockout opened when it says)."""
    after = dict(row)
    after["schedule"] = qc.schedule
    current = QcStatus(row["status"])
    step = next_status(current, event, locked=row["lockout_id"] is not None, lockout=qc.lockout)
    if step.status is not None and step.status != current:
        after["status"] = step.status.value
        after["since"] = tx.now
    if step.open_lockout:
        after["lockout_id"] = _open_lockout(
            tx,
            row["instrument_id"],
            row["test_code"],
            cause=(step.status or current).value,
            evaluation_id=evaluation_id,
            rules=rules or [],
        )
    elif event == "reject" and row["lockout_id"] is None:
        # lockout "off": no lockout, but a failure is still a deviation to follow up
        _deviation_only(tx, row, rules or [])
    return after


def _deviation_only(tx: Tx, row: dict[str, Any], rules: list[str]) -> None:
    from gateway.catalogue import FALLBACK_LANGUAGE, text

    record_deviation(
        tx,
        Deviation(
            kind="qc_failure",
            summary=text(
                FALLBACK_LANGUAGE,
                "qc.deviation.qc_failure",
                instrument=row["instrument_id"],
                test=row["test_code"],
                rules=", ".join(rules) or "-",
            ),
            category=Category.EQUIPMENT.value,
            instrument_id=row["instrument_id"],
        ),
        actor=SYSTEM,
    )


def run_seen(
    tx: Tx, instrument_id: str, test_code: str, qc: QcConfig, performed_at: datetime | None
) -> None:
    """A run that could not be judged yet (no target: first N being collected): only its time."""
    row = _row(tx, instrument_id, test_code, qc)
    after = dict(row, last_run_at=performed_at or tx.now, schedule=qc.schedule)
    _write(tx, row, after)


def apply_run(
    tx: Tx,
    instrument_id: str,
    test_code: str,
    qc: QcConfig,
    *,
    event: Event,
    evaluation_id: int,
    performed_at: datetime | None,
    complete: bool,
    rules: list[str],
    zone: ZoneInfo,
) -> None:
    """A judged run moves the status. An accepted (or warned) complete run resets the
    schedule (due time, patient count) and, under a lockout, counts towards its lift."""
    at = _aware(performed_at) or tx.now
    row = _row(tx, instrument_id, test_code, qc)
    after = _apply(tx, row, qc, event, evaluation_id=evaluation_id, rules=rules)
    after["last_run_at"] = at
    if event != "reject" and complete:
        after["last_accepted_at"] = at
        after["due_at"] = due_after(qc.schedule, at, zone=zone, shift_hours=qc.shift_hours)
        after["patients_since"] = 0
        lockout_id = row["lockout_id"]
        if lockout_id is not None:
            tx.conn.execute(
                update(qc_lockouts)
                .where(qc_lockouts.c.id == lockout_id, qc_lockouts.c.accepted_at.is_(None))
                .values(accepted_evaluation_id=evaluation_id, accepted_at=tx.now)
            )
            lockout = get_lockout(tx.conn, lockout_id)
            assert lockout is not None
            if lifts(accepted=True, corrective_action=bool(lockout.corrective_action)):
                after = _lifted(tx, after, lockout, SYSTEM)
    _write(tx, row, after, reason=",".join(rules))


def _lifted(tx: Tx, row: dict[str, Any], lockout: Lockout, person: str) -> dict[str, Any]:
    tx.conn.execute(
        update(qc_lockouts)
        .where(qc_lockouts.c.id == lockout.id)
        .values(lifted_at=tx.now, lifted_by=person)
    )
    tx.audit(
        actor=person,
        action="qc.lockout_lifted",
        entity="qc_lockout",
        entity_id=lockout.id,
        reason=lockout.corrective_action,
        after={"accepted_evaluation": lockout.accepted_evaluation_id},
    )
    return dict(row, status=QcStatus.IN_CONTROL.value, since=tx.now, lockout_id=None)


def lot_registered(tx: Tx, instrument_id: str, test_code: str) -> bool:
    """A new lot for ``test_code`` (on ``instrument_id``, or every instrument when ""): a
    ``new_lot`` schedule's controls are due at once. Whether a status changed (facts bumped)."""
    query = (
        update(qc_status)
        .where(
            qc_status.c.test_code == test_code,
            qc_status.c.schedule == "new_lot",
            or_(qc_status.c.due_at.is_(None), qc_status.c.due_at > tx.now),
        )
        .values(due_at=tx.now, updated_at=tx.now)
    )
    if instrument_id:
        query = query.where(qc_status.c.instrument_id == instrument_id)
    changed = tx.conn.execute(query).rowcount > 0
    if changed:
        store_facts.bump(tx)
    return changed


def mark_overdue(tx: Tx, qc: Mapping[tuple[str, str], QcConfig]) -> list[tuple[str, str]]:
    """The watcher's step: every configured test whose controls are due (by time, or by the
    patient count) and not yet marked becomes overdue (a lockout opens unless lockout "off").
    The (instrument, test) pairs marked."""
    marked: list[tuple[str, str]] = []
    for row in tx.conn.execute(select(qc_status)).mappings().all():
        key = (row["instrument_id"], row["test_code"])
        entry = qc.get(key)
        if entry is None or row["status"] == QcStatus.OVERDUE.value:
            continue
        due = is_overdue(_aware(row["due_at"]), tx.now) or (
            entry.schedule == "every_n" and count_due(int(row["patients_since"]), entry.every_n)
        )
        if not due or row["lockout_id"] is not None:
            continue
        before = dict(row)
        after = _apply(tx, before, entry, "overdue")
        _write(tx, before, after, reason="overdue")
        if after["status"] != before["status"]:
            marked.append(key)
    return marked


def count_patients(
    tx: Tx, counts: Mapping[tuple[str, str], int], qc: Mapping[tuple[str, str], QcConfig]
) -> None:
    """Schedule every_n: add each (instrument, test)'s patient samples of this transaction
    (one UPDATE each); reaching ``every_n`` marks the test overdue at once."""
    for key, n in counts.items():
        entry = qc.get(key)
        if entry is None or entry.schedule != "every_n" or n <= 0:
            continue
        done = tx.conn.execute(
            update(qc_status)
            .where(qc_status.c.instrument_id == key[0], qc_status.c.test_code == key[1])
            .values(patients_since=qc_status.c.patients_since + n)
            .returning(qc_status.c.patients_since)
        ).scalar()
        if done is None:
            row = _row(tx, key[0], key[1], entry)
            tx.conn.execute(
                update(qc_status)
                .where(qc_status.c.instrument_id == key[0], qc_status.c.test_code == key[1])
                .values(patients_since=n)
            )
            done = n
            del row
        if count_due(int(done), entry.every_n):
            mark_overdue(tx, {key: entry})


def record_corrective_action(tx: Tx, lockout_id: int, *, text: str, person: str) -> bool:
    """Document the corrective action of an open lockout (the caller checked the signer's
    password); a ``signatures`` row "corrective_action", the lockout's deviation gets it too.
    Whether the lockout lifted (an accepted run already followed it). ValueError: no such
    open lockout, empty text, or a person without the role supervisor or quality_manager."""
    from gateway.people.roles import Role
    from gateway.store.facts import load_facts
    from gateway.store.signatures import add_signature

    if not text.strip():
        raise ValueError("the corrective action must be described")
    facts = load_facts(tx.conn)
    if not facts.has_role(person, Role.SUPERVISOR, Role.QUALITY_MANAGER):
        raise ValueError(f"{person} is not an active supervisor or quality manager")
    lockout = get_lockout(tx.conn, lockout_id)
    if lockout is None or lockout.lifted_at is not None:
        raise ValueError(f"lockout {lockout_id} is not open")
    note = text.strip()
    add_signature(
        tx,
        person=person,
        meaning="corrective",  # signatures.meaning holds 16 characters
        result_id=None,
        comment=note,
        detail={"lockout": lockout_id, "instrument": lockout.instrument_id},
    )
    tx.conn.execute(
        update(qc_lockouts)
        .where(qc_lockouts.c.id == lockout_id)
        .values(corrective_action=note, corrective_action_at=tx.now, corrective_action_by=person)
    )
    if lockout.deviation_id is not None:
        tx.conn.execute(
            update(deviations)
            .where(deviations.c.id == lockout.deviation_id)
            .values(corrective_action=note, updated_at=tx.now, updated_by=person)
        )
        tx.conn.execute(
            insert(deviation_events),
            {
                "deviation_id": lockout.deviation_id,
                "at": tx.now,
                "person": person,
                "action": "corrective_action",
                "from_value": lockout.corrective_action,
                "to_value": note,
            },
        )
    tx.audit(
        actor=person,
        action="qc.corrective_action",
        entity="qc_lockout",
        entity_id=lockout_id,
        reason=note,
    )
    if not lifts(accepted=lockout.accepted_at is not None, corrective_action=True):
        return False
    before = dict(
        tx.conn.execute(
            select(qc_status).where(
                qc_status.c.instrument_id == lockout.instrument_id,
                qc_status.c.test_code == lockout.test_code,
            )
        )
        .mappings()
        .one()
    )
    after = _lifted(tx, before, get_lockout(tx.conn, lockout_id) or lockout, person)
    _write(tx, before, after, reason="lifted")
    return True


def held_by(conn: Connection, lockout: Lockout) -> list[int]:
    """The results still held ``qc_lockout`` on the lockout's instrument and test."""
    query = (
        select(results.c.id)
        .join(holds, holds.c.result_id == results.c.id)
        .where(
            holds.c.reason == HoldReason.QC_LOCKOUT.value,
            holds.c.released_at.is_(None),
            results.c.instrument_id == lockout.instrument_id,
            results.c.test_code == lockout.test_code,
            results.c.state == "held",
        )
        .order_by(results.c.id)
    )
    return [int(i) for i in dict.fromkeys(conn.execute(query).scalars())]


def lockout_open_for(conn: Connection, instrument_id: str, test_code: str) -> int | None:
    """The open lockout of an instrument's test, if any (a release of its results waits)."""
    found = conn.execute(
        select(qc_lockouts.c.id).where(
            qc_lockouts.c.instrument_id == instrument_id,
            qc_lockouts.c.test_code == test_code,
            qc_lockouts.c.lifted_at.is_(None),
        )
    ).scalar()
    return int(found) if found is not None else None
