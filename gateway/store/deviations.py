"""The deviation register in the store: reporting by hand, the immediate action, the cause and
corrective action, comments, the state moves (``gateway.deviations.workflow``), reading it
(filtered list, one deviation with its history, export rows) and the automatic deviation for
messages put in quarantine.

Every change writes a ``deviation_events`` row (who, when, what, from, to) and an audit row in
the caller's transaction; the person's roles are read from the store here, so the web and the
CLI are held to the same table. Closing is an electronic signature: the caller has asked the
password again (``close_signed``), and the ``signatures`` row is written with the move.

Texts are stored as typed; a reader scrubs national IDs (``gateway.privacy.scrub_deviations``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, func, insert, select, update

from gateway.catalogue import FALLBACK_LANGUAGE, text
from gateway.deviations import record
from gateway.deviations.categories import RESPONSIBLE, Category
from gateway.deviations.workflow import (
    MAX_TEXT,
    DevState,
    Edit,
    Facts,
    Refusal,
    check_edit,
    check_move,
    check_report,
    move_name,
)
from gateway.model import Deviation
from gateway.people.roles import Role, parse_roles
from gateway.store.signatures import add_signature
from gateway.store.tables import deviation_events, deviations, users
from gateway.store.writer import Tx

#: the kind of a deviation reported by hand
MANUAL: Final = "manual"
#: the kind of the automatic deviation for messages put in quarantine
QUARANTINE: Final = "quarantine"
#: the signature meaning of closing a deviation
CLOSE_MEANING: Final = "deviation_close"
_QUARANTINE_MEMO: Final = "deviations.quarantine"
OSLO: Final = ZoneInfo("Europe/Oslo")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a register command did: ``done`` with the deviation's id, or the refusal."""

    done: bool
    what: str
    deviation_id: int | None = None
    refusal: Refusal | None = None
    signature_id: int | None = None
    params: Mapping[str, str] = field(default_factory=dict)

    def message(self, lang: str) -> str:
        """The sentence a person reads about it, in ``lang``."""
        if self.done:
            return text(lang, f"deviation.done.{self.what}", id=self.deviation_id, **self.params)
        code = self.refusal.value if self.refusal else "not_a_move"
        return text(lang, f"deviation.refused.{code}", id=self.deviation_id, **self.params)

    @property
    def bad_input(self) -> bool:
        """A refusal the person fixes by typing something else (exit 2 in the CLI, 422)."""
        return self.refusal in _BAD_INPUT


_BAD_INPUT: Final = frozenset(
    {
        Refusal.EMPTY,
        Refusal.TOO_LONG,
        Refusal.UNCHANGED,
        Refusal.UNKNOWN_CATEGORY,
        Refusal.NEEDS_REASON,
        Refusal.NEEDS_CAUSE,
        Refusal.NEEDS_CORRECTIVE_ACTION,
    }
)


def _refused(what: str, refusal: Refusal, deviation_id: int | None = None) -> Outcome:
    return Outcome(False, what, deviation_id, refusal)


# --- who and what ----------------------------------------------------------------------------


def roles_of(conn: Connection, person: str) -> frozenset[Role]:
    """``person``'s roles as the store has them now; none when unknown or not active."""
    row = conn.execute(
        select(users.c.roles, users.c.active).where(users.c.person == person)
    ).first()
    if row is None or not row.active:
        return frozenset()
    return parse_roles(row.roles)


def _row(conn: Connection, deviation_id: int) -> Any:
    return conn.execute(select(deviations).where(deviations.c.id == deviation_id)).first()


def _event(tx: Tx, deviation_id: int, person: str, action: str, old: str, new: str) -> None:
    tx.conn.execute(
        insert(deviation_events),
        {
            "deviation_id": deviation_id,
            "at": tx.now,
            "person": person,
            "action": action,
            "from_value": old,
            "to_value": new,
        },
    )


def _touch(tx: Tx, deviation_id: int, person: str, **values: object) -> None:
    tx.conn.execute(
        update(deviations)
        .where(deviations.c.id == deviation_id)
        .values(updated_at=tx.now, updated_by=person, **values)
    )


def _category(value: str) -> Category | None:
    try:
        return Category(value)
    except ValueError:
        return None


# --- reporting and editing -------------------------------------------------------------------


def report(
    tx: Tx,
    person: str,
    *,
    category: str,
    summary: str,
    detail: str = "",
    immediate_action: str = "",
    instrument_id: str = "",
    result_id: int | None = None,
    actor: str = "",
) -> Outcome:
    """``person`` reports a deviation by hand (kind ``manual``), routed by ``category``; an
    immediate action given is its second history row."""
    what = "reported"
    refusal = check_report(roles_of(tx.conn, person), summary)
    if refusal is None and _category(category) is None:
        refusal = Refusal.UNKNOWN_CATEGORY
    if refusal is None and max(len(detail), len(immediate_action)) > MAX_TEXT:
        refusal = Refusal.TOO_LONG
    if refusal is not None:
        return _refused(what, refusal)
    deviation_id = record(
        tx,
        Deviation(
            kind=MANUAL,
            summary=summary.strip(),
            detail=detail.strip(),
            category=category,
            instrument_id=instrument_id.strip(),
            result_id=result_id,
        ),
        actor=person,
    )
    if immediate_action.strip():
        _set_text(tx, deviation_id, person, Edit.IMMEDIATE_ACTION, "", immediate_action.strip())
        _audit_change(
            tx, actor or person, deviation_id, "immediate_action", "", immediate_action.strip()
        )
    return Outcome(True, what, deviation_id)


def _set_text(
    tx: Tx, deviation_id: int, person: str, edit: Edit, old: str, new: str, **more: object
) -> None:
    _event(tx, deviation_id, person, edit.value, old, new)
    _touch(tx, deviation_id, person, **{edit.value: new}, **more)


def set_immediate_action(
    tx: Tx, deviation_id: int, person: str, value: str, *, actor: str = ""
) -> Outcome:
    """Record (or replace) the immediate action (strakstiltak); the old text stays in the
    history."""
    what = "immediate_action"
    row = _row(tx.conn, deviation_id)
    if row is None:
        return _refused(what, Refusal.NO_SUCH_DEVIATION, deviation_id)
    value = value.strip()
    refusal = check_edit(
        Edit.IMMEDIATE_ACTION, DevState(row.state), roles_of(tx.conn, person), value
    )
    if refusal is None and value == row.immediate_action:
        refusal = Refusal.UNCHANGED
    if refusal is not None:
        return _refused(what, refusal, deviation_id)
    _set_text(tx, deviation_id, person, Edit.IMMEDIATE_ACTION, row.immediate_action, value)
    _audit_change(
        tx, actor or person, deviation_id, "immediate_action", row.immediate_action, value
    )
    return Outcome(True, what, deviation_id)


def _audit_change(tx: Tx, actor: str, deviation_id: int, name: str, old: str, new: str) -> None:
    tx.audit(
        actor=actor,
        action=f"deviation.{name}",
        entity="deviation",
        entity_id=deviation_id,
        before={name: old},
        after={name: new},
    )


def record_handling(
    tx: Tx,
    deviation_id: int,
    person: str,
    *,
    cause: str | None = None,
    corrective_action: str | None = None,
    corrective_action_needed: bool = True,
    category: str | None = None,
    actor: str = "",
) -> Outcome:
    """The handler's fields: the cause, the corrective action (or, with
    ``corrective_action_needed=False``, why none is needed: the text is the reason) and the
    category. ``None`` leaves a field as it is; each changed field is one history row.
    Recording a cause or a corrective action on an open deviation takes it up (open ->
    in_progress)."""
    what = "handling"
    row = _row(tx.conn, deviation_id)
    if row is None:
        return _refused(what, Refusal.NO_SUCH_DEVIATION, deviation_id)
    state = DevState(row.state)
    roles = roles_of(tx.conn, person)
    changes: list[tuple[Edit, str, str]] = []
    if cause is not None and cause.strip() != row.cause:
        changes.append((Edit.CAUSE, row.cause, cause.strip()))
    needed_changed = corrective_action is not None and (
        bool(row.corrective_action_needed) != corrective_action_needed
    )
    if corrective_action is not None and (
        corrective_action.strip() != row.corrective_action or needed_changed
    ):
        changes.append((Edit.CORRECTIVE_ACTION, row.corrective_action, corrective_action.strip()))
    if category is not None and category != row.category:
        if _category(category) is None:
            return _refused(what, Refusal.UNKNOWN_CATEGORY, deviation_id)
        changes.append((Edit.CATEGORY, row.category, category))
    if not changes:
        # nothing new typed: say what is wrong with it (a closed one, no role) before "unchanged"
        refusal = check_edit(Edit.CAUSE, state, roles, "", required=False)
        return _refused(what, refusal or Refusal.UNCHANGED, deviation_id)
    for edit, _old, new in changes:
        refusal = check_edit(edit, state, roles, new, required=edit is Edit.CATEGORY)
        if refusal is not None:
            return _refused(what, refusal, deviation_id)
    if state is DevState.OPEN and any(e is not Edit.CATEGORY for e, _o, _n in changes):
        _move(tx, row, person, DevState.IN_PROGRESS, actor=actor or person)
    for edit, old, new in changes:
        if edit is Edit.CATEGORY:
            function = RESPONSIBLE[Category(new)]
            _set_text(tx, deviation_id, person, edit, old, new, responsible_function=function)
        elif edit is Edit.CORRECTIVE_ACTION:
            # "no corrective action needed" is its own history action: the decision and why
            action = "corrective_action" if corrective_action_needed else "no_corrective_action"
            _event(tx, deviation_id, person, action, old, new)
            _touch(
                tx,
                deviation_id,
                person,
                corrective_action=new,
                corrective_action_needed=corrective_action_needed,
            )
        else:
            _set_text(tx, deviation_id, person, edit, old, new)
        _audit_change(tx, actor or person, deviation_id, edit.value, old, new)
    return Outcome(True, what, deviation_id)


def add_comment(tx: Tx, deviation_id: int, person: str, value: str, *, actor: str = "") -> Outcome:
    """A comment in the history (anyone who works with results, in any state)."""
    what = "comment"
    row = _row(tx.conn, deviation_id)
    if row is None:
        return _refused(what, Refusal.NO_SUCH_DEVIATION, deviation_id)
    value = value.strip()
    refusal = check_edit(Edit.COMMENT, DevState(row.state), roles_of(tx.conn, person), value)
    if refusal is not None:
        return _refused(what, refusal, deviation_id)
    _event(tx, deviation_id, person, Edit.COMMENT.value, "", value)
    _touch(tx, deviation_id, person)
    tx.audit(
        actor=actor or person,
        action="deviation.comment",
        entity="deviation",
        entity_id=deviation_id,
        reason=value,
    )
    return Outcome(True, what, deviation_id)


# --- the state moves -------------------------------------------------------------------------


def _move(tx: Tx, row: Any, person: str, to: DevState, *, actor: str) -> bool:
    """The UPDATE guarded by the state read (a concurrent move makes it miss), its history
    and audit rows; False when someone else moved it first."""
    values: dict[str, object] = {"state": to.value, "updated_at": tx.now, "updated_by": person}
    if to is DevState.CLOSED:
        values |= {"closed_at": tx.now, "closed_by": person}
    elif row.state == DevState.CLOSED:  # reopened: no longer closed (the history keeps who did)
        values |= {"closed_at": None, "closed_by": ""}
    moved = tx.conn.execute(
        update(deviations)
        .where(deviations.c.id == row.id, deviations.c.state == row.state)
        .values(**values)
    ).rowcount
    if not moved:
        return False
    _event(tx, row.id, person, "status", row.state, to.value)
    tx.audit(
        actor=actor,
        action=f"deviation.{move_name(DevState(row.state), to)}",
        entity="deviation",
        entity_id=row.id,
        before={"state": row.state},
        after={"state": to.value},
    )
    return True


def move(
    tx: Tx,
    deviation_id: int,
    person: str,
    to: DevState,
    *,
    reason: str = "",
    signed: bool = False,
    actor: str = "",
) -> Outcome:
    """Move a deviation to ``to`` if the workflow's table lets ``person`` (see
    ``workflow.MOVES``). ``reason`` (a reopening needs one; a close may carry a note) becomes
    a comment in the history. ``signed``: the caller asked the password again and it was
    right (use ``close_signed``); the signature row is written here."""
    row = _row(tx.conn, deviation_id)
    if row is None:
        return _refused("move", Refusal.NO_SUCH_DEVIATION, deviation_id)
    state = DevState(row.state)
    what = move_name(state, to)
    facts = Facts(state, row.cause, row.corrective_action)
    reason = reason.strip()
    refusal = check_move(facts, to, roles_of(tx.conn, person), reason=reason, signed=signed)
    if refusal is not None:
        return _refused(what, refusal, deviation_id)
    if not _move(tx, row, person, to, actor=actor or person):
        return _refused(what, Refusal.NOT_A_MOVE, deviation_id)
    signature_id = None
    if to is DevState.CLOSED:
        signature_id = add_signature(
            tx,
            person=person,
            meaning=CLOSE_MEANING,
            result_id=row.result_id,
            comment=reason,
            detail={
                "deviation": deviation_id,
                "cause": row.cause,
                "corrective_action": row.corrective_action,
                "corrective_action_needed": bool(row.corrective_action_needed),
            },
        )
    if reason:
        _event(tx, deviation_id, person, Edit.COMMENT.value, "", reason)
    return Outcome(True, what, deviation_id, signature_id=signature_id)


def close_signed(
    tx: Tx, deviation_id: int, person: str, *, note: str = "", actor: str = ""
) -> Outcome:
    """Close a deviation: call only after ``person``'s password was asked again and was right
    (the web's ``confirm_signature``, the CLI's ``check_signature``)."""
    return move(tx, deviation_id, person, DevState.CLOSED, reason=note, signed=True, actor=actor)


# --- the automatic deviation for quarantine --------------------------------------------------


def note_quarantine(
    tx: Tx,
    instrument_id: str,
    quarantine_id: int,
    reason: str,
    *,
    zone: ZoneInfo = OSLO,
    category: Category = Category.EQUIPMENT,
    actor: str = "system",
) -> int:
    """A message from ``instrument_id`` went to quarantine: open a deviation (kind
    ``quarantine``), or, when one for this instrument opened today (the site's day) is still
    not closed, add a comment row to it: one analyser sending garbage all day is one
    deviation, not thousands. Category equipment: the analyser sent something unreadable
    (the caller says IT for the LIS's order messages). Its id."""
    day_start = datetime.combine(tx.now.astimezone(zone).date(), time(), zone)
    key = (instrument_id, day_start)
    memo: dict[tuple[str, datetime], int] = tx.memo.setdefault(_QUARANTINE_MEMO, {})
    deviation_id = memo.get(key)
    if deviation_id is None:
        deviation_id = tx.conn.execute(
            select(deviations.c.id)
            .where(
                deviations.c.kind == QUARANTINE,
                deviations.c.instrument_id == instrument_id,
                deviations.c.state != DevState.CLOSED.value,
                deviations.c.created_at >= day_start,
                deviations.c.created_at < day_start + timedelta(days=1),
            )
            .order_by(deviations.c.id.desc())
            .limit(1)
        ).scalar()
    note = f"quarantine #{quarantine_id}: {reason}"
    if deviation_id is not None:
        _event(tx, int(deviation_id), actor, Edit.COMMENT.value, "", note)
        memo[key] = int(deviation_id)
        return int(deviation_id)
    new_id = record(
        tx,
        Deviation(
            kind=QUARANTINE,
            summary=text(
                FALLBACK_LANGUAGE, "deviation.quarantine.summary", instrument=instrument_id
            ),
            detail=note,
            category=category.value,
            instrument_id=instrument_id,
        ),
        actor=actor,
    )
    memo[key] = new_id
    return new_id


# --- reading ---------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def as_dict(row: Any) -> dict[str, Any]:
    """One deviation as the pages, the API, the CLI and the exports read it."""
    return {
        "id": row.id,
        "created_at": row.created_at.isoformat(),
        "kind": row.kind,
        "category": row.category,
        "instrument": row.instrument_id,
        "result_id": row.result_id,
        "outbox_id": row.outbox_id,
        "summary": row.summary,
        "detail": row.detail,
        "responsible": row.responsible_function,
        "immediate_action": row.immediate_action,
        "cause": row.cause,
        "corrective_action": row.corrective_action,
        "corrective_action_needed": bool(row.corrective_action_needed),
        "state": row.state,
        "created_by": row.created_by,
        "updated_at": _iso(row.updated_at),
        "updated_by": row.updated_by,
        "closed_at": _iso(row.closed_at),
        "closed_by": row.closed_by,
    }


@dataclass(frozen=True, slots=True)
class Filters:
    """Which deviations a list shows; empty fields do not filter. ``since``/``until``: the
    time it was created, from ``since`` (inclusive) up to ``until`` (exclusive)."""

    state: str = ""
    category: str = ""
    instrument: str = ""
    kind: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.state:
            found.append(deviations.c.state == self.state)
        if self.category:
            found.append(deviations.c.category == self.category)
        if self.instrument:
            found.append(deviations.c.instrument_id == self.instrument)
        if self.kind:
            found.append(deviations.c.kind == self.kind)
        if self.since is not None:
            found.append(deviations.c.created_at >= self.since)
        if self.until is not None:
            found.append(deviations.c.created_at < self.until)
        return found


def list_deviations(
    conn: Connection, filters: Filters = Filters(), *, limit: int = 100
) -> list[dict[str, Any]]:
    """Deviations matching ``filters``, newest first."""
    query = select(deviations).where(*filters.where())
    return [
        as_dict(r) for r in conn.execute(query.order_by(deviations.c.id.desc()).limit(limit)).all()
    ]


def count_by_state(conn: Connection, filters: Filters = Filters()) -> dict[str, int]:
    """How many deviations match ``filters`` in each state (the state filter ignored: the
    counts are what a person picks a state from)."""
    wider = Filters(
        "", filters.category, filters.instrument, filters.kind, filters.since, filters.until
    )
    counts = {state.value: 0 for state in DevState}
    for state, n in conn.execute(
        select(deviations.c.state, func.count()).where(*wider.where()).group_by(deviations.c.state)
    ).all():
        counts[str(state)] = int(n)
    return counts


def instruments(conn: Connection) -> list[str]:
    """Every instrument a deviation names (the list's filter)."""
    return sorted(
        str(i)
        for i in conn.execute(
            select(deviations.c.instrument_id).where(deviations.c.instrument_id != "").distinct()
        ).scalars()
    )


def history(conn: Connection, deviation_id: int) -> list[dict[str, Any]]:
    """What happened to a deviation, oldest first: at (ISO), person, action, from, to."""
    return [
        {
            "id": r.id,
            "at": r.at.isoformat(),
            "person": r.person,
            "action": r.action,
            "from_value": r.from_value,
            "to_value": r.to_value,
        }
        for r in conn.execute(
            select(deviation_events)
            .where(deviation_events.c.deviation_id == deviation_id)
            .order_by(deviation_events.c.id)
        ).all()
    ]


def get_deviation(conn: Connection, deviation_id: int) -> dict[str, Any] | None:
    """One deviation with its ``history``, or None."""
    row = _row(conn, deviation_id)
    if row is None:
        return None
    return {**as_dict(row), "history": history(conn, deviation_id)}


def export_rows(
    conn: Connection, since: datetime | None = None, until: datetime | None = None
) -> list[dict[str, Any]]:
    """Every deviation created in [since, until), oldest first (the practice meeting's and
    the annual quality review's list)."""
    query = select(deviations).where(*Filters(since=since, until=until).where())
    return [as_dict(r) for r in conn.execute(query.order_by(deviations.c.id)).all()]


def counts_by(rows: Iterable[Mapping[str, Any]], key: str) -> dict[str, int]:
    """How many of ``rows`` have each value of ``key`` (the annual review's summary)."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row[key])] = counts.get(str(row[key]), 0) + 1
    return dict(sorted(counts.items()))
