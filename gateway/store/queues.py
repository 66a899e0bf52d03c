"""What waits for people: the verification and co-sign queues, held results with the actions a
viewer may take, a person's own work, and the recertification due list.

Read-only repository functions for the people pages (and their JSON API), called on every
refresh: each runs a few queries whatever the number of rows (the people facts, three more,
unless the caller passes them), never one per row. They return frozen dataclasses; a patient
ID is masked (``DDMMYY*****``) unless ``show_patient`` is asked for, and free text (a value,
a comment, a hold's parameters) passes ``gateway.privacy.scrub``.

Whether a viewer may act comes from ``gateway.people.roles.HOLD_ACTIONS`` through
``gateway.people.permissions.refusal``: the role, the certification for the result's task at
``now``, and "not the performer". A viewer without the role is offered nothing (deny by
default; admin holds no result role). ``context`` is the config's rule context (test
mappings, instrument drivers, the site's time zone); the people facts are read from the store
unless given as ``facts``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Select, and_, exists, select

from gateway.model import HoldReason, State
from gateway.national_id import mask
from gateway.people.certification import CertStatus
from gateway.people.permissions import NO_ROLE, action_rule, refusal
from gateway.people.roles import HoldAction, actions_for
from gateway.people.tasks import WorkItem
from gateway.privacy import scrub
from gateway.rules import RuleContext
from gateway.rules.facts import Facts
from gateway.store.facts import load_facts
from gateway.store.tables import certifications, holds, results, users
from gateway.texts import params_from_json

#: the most rows a queue returns (oldest first): a page shows a screenful and a count
DEFAULT_LIMIT: Final = 200
#: the certification statuses the due list shows: those a recertification renews
DUE_STATUSES: Final = (CertStatus.CERTIFIED.value, CertStatus.EXPIRED.value)


@dataclass(frozen=True, slots=True)
class HeldResult:
    """A held result as the queues show it; its value, performer and time are the first
    reading (the one a verifier checks, a supervisor co-signs).

    ``patient_id`` is masked unless asked for; ``value`` and ``comment`` are scrubbed.
    ``performer`` is the person who performed it (``results.performed_by``; "" unknown),
    ``performer_name`` their name from the users table ("" unknown). ``received_at`` is when
    it arrived or was entered.
    """

    id: int
    instrument_id: str
    test_code: str
    test_name: str
    method: str
    value: str
    unit: str
    patient_id: str
    specimen_id: str
    performer: str
    performer_name: str
    operator_id: str
    performed_at: datetime | None
    received_at: datetime
    comment: str
    #: the task the result is (``instrument:test``), as certifications are checked against it
    task: str


@dataclass(frozen=True, slots=True)
class VerificationItem:
    """A result held ``awaiting_verification``; whether this viewer may verify (and reject) it,
    and if not, why (``permission.refused.<code>``: own_result, not_certified, no_role, ...)."""

    result: HeldResult
    hold_id: int
    held_at: datetime
    may_verify: bool
    refused: str = ""


@dataclass(frozen=True, slots=True)
class CosignItem:
    """A trainee's result held ``awaiting_cosign``: the trainee, the task and the supervisor
    their certification names ("" when none), and whether this viewer may co-sign it (any
    supervisor certified for the task may, DOMAIN rule 2: not only the one named)."""

    result: HeldResult
    hold_id: int
    held_at: datetime
    trainee: str
    task: str
    supervisor: str
    may_cosign: bool
    refused: str = ""


@dataclass(frozen=True, slots=True)
class HoldView:
    """One open hold: its reason and parameters (scrubbed; ``gateway.texts.hold_why`` renders
    them), the role its row names, and what this viewer may do about it.

    ``actions``: the actions (``HoldAction`` codes) this viewer may take now. ``refused``:
    action -> refusal code for the actions whose role the viewer holds but may not take here
    (their own result, not certified), so a page can say why; empty for anyone without the
    role: they are offered nothing and told nothing.
    """

    id: int
    reason: str
    params: Mapping[str, str]
    release_role: str
    created_at: datetime
    actions: tuple[str, ...] = ()
    refused: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HeldItem:
    """A held result with every open hold on it."""

    result: HeldResult
    holds: tuple[HoldView, ...]

    @property
    def actions(self) -> tuple[str, ...]:
        """Every action this viewer may take on any of its holds."""
        return tuple(dict.fromkeys(a for h in self.holds for a in h.actions))


@dataclass(frozen=True, slots=True)
class DueItem:
    """A certification due for recertification: ``days_left`` until ``recert_due`` (0: due
    today, still valid through today; negative: overdue, expired since the next midnight)."""

    person: str
    name: str
    task: str
    status: str
    recert_due: date
    days_left: int
    supervisor: str

    @property
    def overdue(self) -> bool:
        return self.days_left < 0


@dataclass(frozen=True, slots=True)
class MyWork:
    """What waits for one person: the verifications and co-signs they may do now, their own
    results that are held (waiting for someone else, or uncertified), and their
    certifications due within the reminder days."""

    verify: tuple[VerificationItem, ...]
    cosign: tuple[CosignItem, ...]
    my_held: tuple[HeldItem, ...]
    certifications_due: tuple[DueItem, ...]


# --- shared pieces ---------------------------------------------------------------------------

_RESULT_COLUMNS = (
    results.c.id,
    results.c.instrument_id,
    results.c.test_code,
    results.c.test_name,
    results.c.method,
    results.c.value,
    results.c.unit,
    results.c.patient_id,
    results.c.specimen_id,
    results.c.performed_by,
    results.c.operator_id,
    results.c.performed_at,
    results.c.created_at,
    results.c.comment,
    users.c.name.label("performer_name"),
)
_WITH_PERFORMER = results.outerjoin(users, users.c.person == results.c.performed_by)


def _work(context: RuleContext, instrument_id: str, test_code: str) -> WorkItem:
    test = context.find_test(instrument_id, test_code)
    return WorkItem(
        instrument_id=instrument_id,
        driver=context.drivers.get(instrument_id, ""),
        test_code=test_code,
        group=test.group if test is not None else "",
    )


def _held_result(row: Any, *, show_patient: bool) -> HeldResult:
    return HeldResult(
        id=int(row.id),
        instrument_id=row.instrument_id,
        test_code=row.test_code,
        test_name=row.test_name,
        method=row.method,
        value=scrub(row.value),
        unit=row.unit,
        patient_id=row.patient_id if show_patient else mask(row.patient_id),
        specimen_id=row.specimen_id,
        performer=row.performed_by,
        performer_name=row.performer_name or "",
        operator_id=row.operator_id,
        performed_at=row.performed_at,
        received_at=row.created_at,
        comment=scrub(row.comment),
        task=f"{row.instrument_id}:{row.test_code}",
    )


def _open_holds_of(reason: str, limit: int) -> Select[Any]:
    """Held results with an open hold of ``reason``, oldest first, with that hold's columns."""
    return (
        select(
            *_RESULT_COLUMNS,
            holds.c.id.label("hold_id"),
            holds.c.params,
            holds.c.created_at.label("held_at"),
        )
        .select_from(_WITH_PERFORMER.join(holds, holds.c.result_id == results.c.id))
        .where(
            results.c.state == State.HELD.value,
            holds.c.reason == reason,
            holds.c.released_at.is_(None),
        )
        .order_by(results.c.id)
        .limit(limit)
    )


def _refused(
    reason: str,
    action: HoldAction,
    context: RuleContext,
    facts: Facts,
    viewer: str,
    row: Any,
    now: datetime,
) -> str:
    rule = action_rule(reason, action)
    if rule is None:
        return NO_ROLE
    return refusal(
        rule,
        facts,
        viewer,
        performer=row.performed_by,
        work=_work(context, row.instrument_id, row.test_code),
        at=now,
        zone=context.zone,
        require_certification=context.enforce_people,
    )


def _param(params: Mapping[str, str] | None, key: str) -> str:
    value = (params or {}).get(key, "")
    return "" if value == "–" else value


# --- the queues ------------------------------------------------------------------------------


def verification_queue(
    conn: Connection,
    viewer: str,
    context: RuleContext,
    now: datetime,
    *,
    facts: Facts | None = None,
    limit: int = DEFAULT_LIMIT,
    show_patient: bool = False,
) -> list[VerificationItem]:
    """Results held ``awaiting_verification``, oldest first, each with whether ``viewer`` may
    verify it at ``now`` (the verifier role, certified for the task, not the performer) and,
    when not, the refusal code. One query (four without ``facts``)."""
    facts = load_facts(conn) if facts is None else facts
    items = []
    for row in conn.execute(_open_holds_of(HoldReason.AWAITING_VERIFICATION, limit)):
        why = _refused(
            HoldReason.AWAITING_VERIFICATION, HoldAction.VERIFY, context, facts, viewer, row, now
        )
        items.append(
            VerificationItem(
                result=_held_result(row, show_patient=show_patient),
                hold_id=int(row.hold_id),
                held_at=row.held_at,
                may_verify=not why,
                refused=why,
            )
        )
    return items


def cosign_queue(
    conn: Connection,
    viewer: str,
    context: RuleContext,
    now: datetime,
    *,
    facts: Facts | None = None,
    limit: int = DEFAULT_LIMIT,
    show_patient: bool = False,
) -> list[CosignItem]:
    """Trainees' results held ``awaiting_cosign``, oldest first, with the trainee, the task,
    the supervisor named, and whether ``viewer`` may co-sign (the supervisor role, certified
    for the task at ``now``, not the trainee). One query (four without ``facts``)."""
    facts = load_facts(conn) if facts is None else facts
    items = []
    for row in conn.execute(_open_holds_of(HoldReason.AWAITING_COSIGN, limit)):
        params = params_from_json(row.params)
        why = _refused(
            HoldReason.AWAITING_COSIGN, HoldAction.COSIGN, context, facts, viewer, row, now
        )
        result = _held_result(row, show_patient=show_patient)
        items.append(
            CosignItem(
                result=result,
                hold_id=int(row.hold_id),
                held_at=row.held_at,
                trainee=_param(params, "person") or result.performer,
                task=_param(params, "task") or result.task,
                supervisor=_param(params, "supervisor"),
                may_cosign=not why,
                refused=why,
            )
        )
    return items


def held_results(
    conn: Connection,
    viewer: str,
    context: RuleContext,
    now: datetime,
    *,
    facts: Facts | None = None,
    reason: str | None = None,
    performer: str | None = None,
    result_id: int | None = None,
    limit: int = DEFAULT_LIMIT,
    show_patient: bool = False,
) -> list[HeldItem]:
    """Held results, oldest first, each with its open holds and, per hold, the actions
    ``viewer`` may take (``HoldView``); ``reason``: only results with an open hold of that
    reason; ``performer``: only results that person performed; ``result_id``: only that
    result (its page). Two queries (five without ``facts``)."""
    facts = load_facts(conn) if facts is None else facts
    query = (
        select(*_RESULT_COLUMNS)
        .select_from(_WITH_PERFORMER)
        .where(results.c.state == State.HELD.value)
        .order_by(results.c.id)
        .limit(limit)
    )
    if reason is not None:
        query = query.where(
            exists().where(
                and_(
                    holds.c.result_id == results.c.id,
                    holds.c.reason == reason,
                    holds.c.released_at.is_(None),
                )
            )
        )
    if performer is not None:
        query = query.where(results.c.performed_by == performer)
    if result_id is not None:
        query = query.where(results.c.id == result_id)
    rows = conn.execute(query).all()
    by_result: dict[int, list[Any]] = {}
    if rows:
        for hold in conn.execute(
            select(holds)
            .where(holds.c.result_id.in_([r.id for r in rows]), holds.c.released_at.is_(None))
            .order_by(holds.c.id)
        ):
            by_result.setdefault(hold.result_id, []).append(hold)
    return [
        HeldItem(
            result=_held_result(row, show_patient=show_patient),
            holds=tuple(
                _hold_view(hold, row, viewer, context, facts, now)
                for hold in by_result.get(row.id, [])
            ),
        )
        for row in rows
    ]


def _hold_view(
    hold: Any, row: Any, viewer: str, context: RuleContext, facts: Facts, now: datetime
) -> HoldView:
    allowed: list[str] = []
    refused: dict[str, str] = {}
    work = _work(context, row.instrument_id, row.test_code)
    for rule in actions_for(hold.reason):
        why = refusal(
            rule,
            facts,
            viewer,
            performer=row.performed_by,
            work=work,
            at=now,
            zone=context.zone,
            require_certification=context.enforce_people,
        )
        if not why:
            allowed.append(rule.action.value)
        elif facts.has_role(viewer, *rule.roles):
            refused[rule.action.value] = why
    params = params_from_json(hold.params) or {}
    return HoldView(
        id=int(hold.id),
        reason=hold.reason,
        params={key: scrub(value) for key, value in params.items()},
        release_role=hold.release_role,
        created_at=hold.created_at,
        actions=tuple(allowed),
        refused=refused,
    )


def my_work(
    conn: Connection,
    person: str,
    context: RuleContext,
    now: datetime,
    *,
    reminder_days: int = 30,
    facts: Facts | None = None,
    limit: int = DEFAULT_LIMIT,
    show_patient: bool = False,
) -> MyWork:
    """What waits for ``person``: the verifications and co-signs they may do at ``now`` (not
    their own results), their own held results, and their certifications due within
    ``reminder_days`` (``[people] reminder_days``) of today in the site's zone, or overdue.
    Five queries (eight without ``facts``)."""
    facts = load_facts(conn) if facts is None else facts
    verify = [
        item
        for item in verification_queue(
            conn, person, context, now, facts=facts, limit=limit, show_patient=show_patient
        )
        if item.may_verify
    ]
    cosign = [
        item
        for item in cosign_queue(
            conn, person, context, now, facts=facts, limit=limit, show_patient=show_patient
        )
        if item.may_cosign
    ]
    mine = held_results(
        conn,
        person,
        context,
        now,
        facts=facts,
        performer=person,
        limit=limit,
        show_patient=show_patient,
    )
    today = now.astimezone(context.zone).date()
    due = recert_due_list(conn, today, reminder_days, person=person)
    return MyWork(tuple(verify), tuple(cosign), tuple(mine), tuple(due))


def recert_due_list(
    conn: Connection,
    today: date,
    within_days: int,
    *,
    person: str | None = None,
    statuses: Sequence[str] = DUE_STATUSES,
) -> list[DueItem]:
    """Certifications of active people due for recertification by ``today + within_days``
    (overdue ones included), soonest first; ``person``: only theirs. Suspended ones are not
    listed (a suspension is lifted by a decision, not a recertification), nor trainees'. One
    query."""
    last = today + timedelta(days=within_days)
    query = (
        select(
            certifications.c.person,
            users.c.name,
            certifications.c.task,
            certifications.c.status,
            certifications.c.recert_due,
            certifications.c.supervisor,
        )
        .join(users, users.c.person == certifications.c.person)
        .where(
            users.c.active.is_(True),
            certifications.c.recert_due.is_not(None),
            certifications.c.recert_due <= last,
            certifications.c.status.in_(list(statuses)),
        )
        .order_by(certifications.c.recert_due, certifications.c.person, certifications.c.task)
    )
    if person is not None:
        query = query.where(certifications.c.person == person)
    return [
        DueItem(
            person=row.person,
            name=row.name,
            task=row.task,
            status=row.status,
            recert_due=row.recert_due,
            days_left=(row.recert_due - today).days,
            supervisor=row.supervisor,
        )
        for row in conn.execute(query)
    ]
