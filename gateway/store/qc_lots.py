"""Control lots and their targets (DOMAIN rule 8): registering, changing, finding, reading.

A lot is one control material's lot for one test and level, on one instrument or on every
instrument (``instrument_id`` ""). Its target (mean, SD) is the newest ``qc_targets`` row: a
new target supersedes the old one and the Westgard history restarts with it (the engine
compares targets). Values are decimal text in the store and ``Decimal`` here.

Every write is audited; a write that can change what rules read (a target, a lot that makes a
``new_lot`` schedule due) bumps the facts version in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, Row, func, insert, or_, select, update

from gateway.store.tables import control_lots, qc_targets
from gateway.store.writer import Tx

#: the fields ``update_lot`` may change
LOT_FIELDS = frozenset(
    {
        "material",
        "unit",
        "kind",
        "expected",
        "expires_on",
        "opened_on",
        "in_use_days",
        "manufacturer_mean",
        "manufacturer_sd",
        "target_source",
        "first_n",
        "active",
    }
)
KINDS = ("quantitative", "qualitative")
TARGET_SOURCES = ("manufacturer", "first_n", "rolling", "manual")


@dataclass(frozen=True, slots=True)
class TargetRow:
    """A lot's target as stored (the newest row of the lot is its current target)."""

    id: int
    mean: Decimal
    sd: Decimal
    source: str
    n: int
    set_at: datetime
    set_by: str
    note: str


@dataclass(frozen=True, slots=True)
class Lot:
    """A control lot with its current target (None: none set yet)."""

    id: int
    instrument_id: str
    test_code: str
    level: str
    lot: str
    material: str
    unit: str
    kind: str
    expected: str
    expires_on: date | None
    opened_on: date | None
    in_use_days: int | None
    manufacturer_mean: Decimal | None
    manufacturer_sd: Decimal | None
    #: manufacturer | first_n | rolling; "" = the test's ``[[qc]] target_source``
    target_source: str
    first_n: int | None
    active: bool
    target: TargetRow | None


def decimal_or_none(value: object) -> Decimal | None:
    """A decimal from text or a number; None for None or ""; ValueError when not a number."""
    if value is None or value == "":
        return None
    try:
        found = Decimal(str(value).strip().replace(",", "."))
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    if not found.is_finite():
        raise ValueError(f"not a number: {value!r}")
    return found


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


# --- reading ---------------------------------------------------------------------------------

_CURRENT_TARGET_IDS = (
    select(func.max(qc_targets.c.id).label("id")).group_by(qc_targets.c.lot_id).subquery()
)


def _target(row: Row[Any]) -> TargetRow:
    return TargetRow(
        id=int(row.id),
        mean=Decimal(row.mean),
        sd=Decimal(row.sd),
        source=row.source,
        n=int(row.n or 0),
        set_at=row.set_at,
        set_by=row.set_by,
        note=row.note or "",
    )


def _current_targets(conn: Connection, lot_ids: list[int]) -> dict[int, TargetRow]:
    if not lot_ids:
        return {}
    query = select(qc_targets).where(
        qc_targets.c.id.in_(select(_CURRENT_TARGET_IDS.c.id)), qc_targets.c.lot_id.in_(lot_ids)
    )
    return {int(row.lot_id): _target(row) for row in conn.execute(query)}


def _lot(row: Row[Any], target: TargetRow | None) -> Lot:
    return Lot(
        id=int(row.id),
        instrument_id=row.instrument_id,
        test_code=row.test_code,
        level=row.level,
        lot=row.lot,
        material=row.material or "",
        unit=row.unit or "",
        kind=row.kind or "quantitative",
        expected=row.expected or "",
        expires_on=row.expires_on,
        opened_on=row.opened_on,
        in_use_days=row.in_use_days,
        manufacturer_mean=decimal_or_none(row.manufacturer_mean),
        manufacturer_sd=decimal_or_none(row.manufacturer_sd),
        target_source=row.target_source or "",
        first_n=row.first_n,
        active=bool(row.active),
        target=target,
    )


def _lots(conn: Connection, query: Any) -> list[Lot]:
    rows = list(conn.execute(query))
    targets = _current_targets(conn, [int(r.id) for r in rows])
    return [_lot(r, targets.get(int(r.id))) for r in rows]


def get_lot(conn: Connection, lot_id: int) -> Lot | None:
    """One lot with its current target, or None."""
    found = _lots(conn, select(control_lots).where(control_lots.c.id == lot_id))
    return found[0] if found else None


def find_lot(
    conn: Connection, instrument_id: str, test_code: str, level: str, lot: str
) -> Lot | None:
    """The lot a control names: the instrument's own registration first, then the one for
    every instrument (instrument ""); None when neither is registered."""
    query = select(control_lots).where(
        control_lots.c.instrument_id.in_([instrument_id, ""]),
        control_lots.c.test_code == test_code,
        control_lots.c.level == level,
        control_lots.c.lot == lot,
    )
    found = _lots(conn, query)
    found.sort(key=lambda x: x.instrument_id != instrument_id)
    return found[0] if found else None


def list_lots(
    conn: Connection,
    *,
    instrument_id: str | None = None,
    test_code: str | None = None,
    active_only: bool = False,
) -> list[Lot]:
    """Lots with their current targets, by instrument, test, level and lot. ``instrument_id``
    given: that instrument's lots and the lots for every instrument."""
    query = select(control_lots)
    if instrument_id is not None:
        query = query.where(or_(control_lots.c.instrument_id.in_([instrument_id, ""])))
    if test_code is not None:
        query = query.where(control_lots.c.test_code == test_code)
    if active_only:
        query = query.where(control_lots.c.active.is_(True))
    query = query.order_by(
        control_lots.c.instrument_id,
        control_lots.c.test_code,
        control_lots.c.level,
        control_lots.c.lot,
        control_lots.c.id,
    )
    return _lots(conn, query)


def list_targets(conn: Connection, lot_id: int) -> list[TargetRow]:
    """Every target a lot has had, oldest first (the last is the current one)."""
    query = select(qc_targets).where(qc_targets.c.lot_id == lot_id).order_by(qc_targets.c.id)
    return [_target(row) for row in conn.execute(query)]


def lot_usable(lot: Lot, on: date) -> str | None:
    """Why ``lot`` may not be used on ``on``, or None when it may: "inactive", "expired"
    (past its expiry date), or "in_use_expired" (past its stability once opened)."""
    if not lot.active:
        return "inactive"
    if lot.expires_on is not None and on > lot.expires_on:
        return "expired"
    if (
        lot.opened_on is not None
        and lot.in_use_days is not None
        and on > lot.opened_on + timedelta(days=lot.in_use_days)
    ):
        return "in_use_expired"
    return None


# --- writing ---------------------------------------------------------------------------------


def _snapshot(lot: Lot) -> dict[str, object]:
    return {
        "instrument_id": lot.instrument_id,
        "test_code": lot.test_code,
        "level": lot.level,
        "lot": lot.lot,
        "material": lot.material,
        "unit": lot.unit,
        "kind": lot.kind,
        "expected": lot.expected,
        "expires_on": lot.expires_on.isoformat() if lot.expires_on else None,
        "opened_on": lot.opened_on.isoformat() if lot.opened_on else None,
        "in_use_days": lot.in_use_days,
        "manufacturer_mean": _text(lot.manufacturer_mean),
        "manufacturer_sd": _text(lot.manufacturer_sd),
        "target_source": lot.target_source,
        "first_n": lot.first_n,
        "active": lot.active,
    }


def _check(kind: str, target_source: str, first_n: int | None) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if target_source and target_source not in TARGET_SOURCES:
        raise ValueError(f"target_source must be one of {', '.join(TARGET_SOURCES)}")
    if first_n is not None and first_n < 2:
        raise ValueError("first_n must be >= 2")


def add_lot(
    tx: Tx,
    *,
    instrument_id: str,
    test_code: str,
    level: str,
    lot: str,
    person: str,
    material: str = "",
    unit: str = "",
    kind: str = "quantitative",
    expected: str = "",
    expires_on: date | None = None,
    opened_on: date | None = None,
    in_use_days: int | None = None,
    manufacturer_mean: Decimal | str | float | None = None,
    manufacturer_sd: Decimal | str | float | None = None,
    target_source: str = "",
    first_n: int | None = None,
) -> int:
    """Register a control lot; its id. With the manufacturer's mean and SD it also gets its
    first target (source manufacturer). A new lot makes a ``new_lot`` schedule due
    (``gateway.store.qc_state.lot_registered``). ValueError on a bad field."""
    from gateway.store import qc_state  # qc_state reads lots

    if not test_code or not level or not lot:
        raise ValueError("a lot needs a test, a level and a lot number")
    _check(kind, target_source, first_n)
    mean = decimal_or_none(manufacturer_mean)
    sd = decimal_or_none(manufacturer_sd)
    if sd is not None and sd <= 0:
        raise ValueError("the SD must be > 0")
    lot_id = int(
        tx.conn.execute(
            insert(control_lots).returning(control_lots.c.id),
            {
                "instrument_id": instrument_id,
                "test_code": test_code,
                "level": level,
                "lot": lot,
                "material": material,
                "unit": unit,
                "kind": kind,
                "expected": expected,
                "expires_on": expires_on,
                "opened_on": opened_on,
                "in_use_days": in_use_days,
                "manufacturer_mean": _text(mean),
                "manufacturer_sd": _text(sd),
                "target_source": target_source,
                "first_n": first_n,
                "active": True,
                "created_at": tx.now,
                "created_by": person,
                "updated_at": tx.now,
                "updated_by": person,
            },
        ).scalar_one()
    )
    _audit_lot(tx, lot_id, person=person, action="qc.lot_added")
    if mean is not None and sd is not None and kind == "quantitative":
        set_target(tx, lot_id, mean=mean, sd=sd, source="manufacturer", person=person)
    qc_state.lot_registered(tx, instrument_id, test_code)
    return lot_id


def update_lot(tx: Tx, lot_id: int, *, person: str, **changes: Any) -> None:
    """Change a lot's fields (``LOT_FIELDS``), audited with before and after. KeyError: no
    such lot; ValueError: a field that may not change or a bad value."""
    unknown = set(changes) - LOT_FIELDS
    if unknown:
        raise ValueError(f"cannot change {', '.join(sorted(unknown))}")
    before = get_lot(tx.conn, lot_id)
    if before is None:
        raise KeyError(lot_id)
    values = dict(changes)
    for key in ("manufacturer_mean", "manufacturer_sd"):
        if key in values:
            values[key] = _text(decimal_or_none(values[key]))
    _check(
        values.get("kind", before.kind),
        values.get("target_source", before.target_source),
        values.get("first_n", before.first_n),
    )
    tx.conn.execute(
        update(control_lots)
        .where(control_lots.c.id == lot_id)
        .values(**values, updated_at=tx.now, updated_by=person)
    )
    _audit_lot(tx, lot_id, person=person, action="qc.lot_changed", before=before)


def _audit_lot(tx: Tx, lot_id: int, *, person: str, action: str, before: Lot | None = None) -> None:
    """Audit a lot's change with its row as it now stands (and as it was, when it was)."""
    after = get_lot(tx.conn, lot_id)
    assert after is not None
    tx.audit(
        actor=person,
        action=action,
        entity="control_lot",
        entity_id=lot_id,
        before=None if before is None else _snapshot(before),
        after=_snapshot(after),
    )


def set_target(
    tx: Tx,
    lot_id: int,
    *,
    mean: Decimal | str | float,
    sd: Decimal | str | float,
    source: str,
    person: str,
    n: int = 0,
    note: str = "",
) -> int:
    """Give a lot a new target (it supersedes the current one: the history restarts); the
    target's id. Audited; bumps the facts (a status may follow from it)."""
    from gateway.store import facts as store_facts

    mean_d = decimal_or_none(mean)
    sd_d = decimal_or_none(sd)
    if mean_d is None or sd_d is None:
        raise ValueError("a target needs a mean and an SD")
    if sd_d <= 0:
        raise ValueError("the SD must be > 0")
    if source not in TARGET_SOURCES:
        raise ValueError(f"source must be one of {', '.join(TARGET_SOURCES)}")
    before = get_lot(tx.conn, lot_id)
    if before is None:
        raise KeyError(lot_id)
    target_id = int(
        tx.conn.execute(
            insert(qc_targets).returning(qc_targets.c.id),
            {
                "lot_id": lot_id,
                "mean": str(mean_d),
                "sd": str(sd_d),
                "source": source,
                "n": n,
                "set_at": tx.now,
                "set_by": person,
                "note": note,
            },
        ).scalar_one()
    )
    old = before.target
    tx.audit(
        actor=person,
        action="qc.target_set",
        entity="control_lot",
        entity_id=lot_id,
        reason=note,
        before={"mean": str(old.mean), "sd": str(old.sd), "source": old.source} if old else None,
        after={"mean": str(mean_d), "sd": str(sd_d), "source": source, "n": n, "id": target_id},
    )
    store_facts.bump(tx)
    return target_id
