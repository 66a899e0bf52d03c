"""What every hold action checks first: the result, its open holds, and who signs.

``prepare`` loads the held result (locked for the transaction on PostgreSQL), finds the open
holds the action ends (``gateway.people.roles.HOLD_ACTIONS``) and checks the signer against
each: an active person, holding one of the action's roles, not the performer where the rule
says so, and certified for the result's task at the transaction's time where it says so. The
signer ends the holds they qualify for; when they qualify for none the refusal names the first
reason. The password was checked before (``gateway.store.signin.authenticate``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from gateway.holds.outcome import ActionOutcome, Refusal, refused
from gateway.model import HoldReason, Result, State
from gateway.people import permissions
from gateway.people.certification import status_at
from gateway.people.roles import ActionRule, HoldAction, actions_for, format_roles
from gateway.people.tasks import WorkItem
from gateway.rules import RuleContext
from gateway.rules.people import performer, work_item
from gateway.store.facts import load_facts
from gateway.store.results import RESULT_COLUMNS, from_row
from gateway.store.tables import holds, results
from gateway.store.writer import Tx

#: the one may-act check's codes (``gateway.people.permissions``) as the actions' refusals
_REFUSALS = {
    permissions.UNKNOWN_PERSON: Refusal.UNKNOWN_PERSON,
    permissions.INACTIVE: Refusal.INACTIVE_PERSON,
    permissions.NO_ROLE: Refusal.WRONG_ROLE,
    permissions.OWN_RESULT: Refusal.SAME_PERSON,
    permissions.NOT_CERTIFIED: Refusal.NOT_CERTIFIED,
}
#: states in which the LIS has (or had) the result: a correction is a new result then
SENT_STATES = frozenset({State.SENT.value, State.ACKNOWLEDGED.value, State.REJECTED.value})


@dataclass(frozen=True, slots=True)
class OpenHold:
    id: int
    reason: str


@dataclass(frozen=True, slots=True)
class Subject:
    """A held result an action may go on with, and what the checks found."""

    result: Result
    #: when the result was received (the first reading's time when it does not say)
    received_at: datetime
    #: the rule context with the store's facts as they are in this transaction
    context: RuleContext
    open_holds: tuple[OpenHold, ...]
    #: the open holds this signer ends with this action
    ending: tuple[OpenHold, ...]
    signer: str
    performer: str | None
    work: WorkItem

    @property
    def result_id(self) -> int:
        assert self.result.id is not None
        return self.result.id

    @property
    def remaining(self) -> tuple[OpenHold, ...]:
        ended = {h.id for h in self.ending}
        return tuple(h for h in self.open_holds if h.id not in ended)

    @property
    def performed_at(self) -> datetime:
        """When the first reading was made: as the result says, else when it arrived."""
        return self.result.performed_at or self.received_at


def task_text(work: WorkItem) -> str:
    return f"{work.instrument_id}:{work.test_code}"


def prepare(
    tx: Tx, result_id: int, action: HoldAction, signer: str, context: RuleContext
) -> Subject | ActionOutcome:
    """The subject of ``action`` on ``result_id`` by ``signer``, or the refusal."""
    row = tx.conn.execute(
        select(*RESULT_COLUMNS, results.c.created_at)
        .where(results.c.id == result_id)
        .with_for_update()  # two people acting on one result at once: the second waits
    ).first()
    if row is None:
        return refused(result_id, action, Refusal.NO_SUCH_RESULT)
    state = str(row.state)
    if state == State.TEST.value:
        return refused(result_id, action, Refusal.TEST_DATA, state)
    if state != State.HELD.value:
        sent = action is HoldAction.CORRECT and state in SENT_STATES
        return refused(
            result_id,
            action,
            Refusal.ALREADY_SENT if sent else Refusal.NOT_HELD,
            state,
            state=state,
        )
    open_holds = tuple(
        OpenHold(int(h.id), str(h.reason))
        for h in tx.conn.execute(
            select(holds.c.id, holds.c.reason)
            .where(holds.c.result_id == result_id, holds.c.released_at.is_(None))
            .order_by(holds.c.id)
        )
    )
    applicable = [(h, r) for h in open_holds for r in actions_for(h.reason) if r.action is action]
    if not applicable:
        return _no_hold(result_id, action, state, open_holds)

    context = dataclasses.replace(context, facts=load_facts(tx.conn), now=tx.now)
    result = from_row(row)
    facts = context.facts
    person = facts.people.get(signer)
    if person is None:
        return refused(result_id, action, Refusal.UNKNOWN_PERSON, state, person=signer)
    if not person.active:
        return refused(result_id, action, Refusal.INACTIVE_PERSON, state, person=signer)
    work = work_item(result, context)
    did = performer(result, context)
    ending: list[OpenHold] = []
    first_problem: ActionOutcome | None = None
    for hold, rule in applicable:
        problem = _check(result_id, rule, signer, did, work, context, tx.now, state)
        if problem is None:
            ending.append(hold)
        elif first_problem is None:
            first_problem = problem
    if not ending:
        assert first_problem is not None
        return first_problem
    return Subject(
        result=result,
        received_at=row.created_at,
        context=context,
        open_holds=open_holds,
        ending=tuple(ending),
        signer=signer,
        performer=did,
        work=work,
    )


def _no_hold(
    result_id: int, action: HoldAction, state: str, open_holds: tuple[OpenHold, ...]
) -> ActionOutcome:
    reasons = [h.reason for h in open_holds]
    if action is HoldAction.RELEASE and HoldReason.INVALID_PATIENT_ID in reasons:
        return refused(result_id, action, Refusal.NEEDS_CORRECTION, state)
    others = sorted({r.action.value for reason in reasons for r in actions_for(reason)})
    return refused(
        result_id,
        action,
        Refusal.NO_OPEN_HOLD,
        state,
        holds=";".join(dict.fromkeys(reasons)),
        actions=";".join(others),
    )


def signer_problem(
    rule: ActionRule,
    signer: str,
    performer: str | None,
    work: WorkItem,
    context: RuleContext,
    now: datetime,
) -> tuple[Refusal, dict[str, str]] | None:
    """Why ``signer`` may not take ``rule``'s action on a result ``performer`` performed for
    ``work`` (the refusal and its text's parameters), or None when they may. Pure: a page may
    ask it to offer only the actions a viewer can take (the action asks it again)."""
    facts = context.facts
    why = permissions.refusal(
        rule,
        facts,
        signer,
        performer=performer or "",
        work=work,
        at=now,
        zone=context.zone,
        require_certification=context.enforce_people,
    )
    if not why:
        return None
    if why == permissions.NOT_CERTIFIED:
        cert = facts.certification_for(signer, work)
        status = status_at(cert, now, context.zone) if cert is not None else None
        return Refusal.NOT_CERTIFIED, {
            "person": signer,
            "task": task_text(work),
            "status": status.value if status else "none",
        }
    if why == permissions.NO_ROLE:
        return Refusal.WRONG_ROLE, {"person": signer, "roles": format_roles(rule.roles)}
    return _REFUSALS[why], {"person": signer}


def _check(
    result_id: int,
    rule: ActionRule,
    signer: str,
    did: str | None,
    work: WorkItem,
    context: RuleContext,
    now: datetime,
    state: str,
) -> ActionOutcome | None:
    problem = signer_problem(rule, signer, did, work, context, now)
    if problem is None:
        return None
    code, params = problem
    return refused(result_id, rule.action, code, state, **params)
