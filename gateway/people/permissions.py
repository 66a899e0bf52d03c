"""Whether a person may take an action on a held result: the one check, pure over the facts.

``gateway.people.roles.HOLD_ACTIONS`` says, per hold reason, which roles may take which action,
and whether the person must be certified for the result's task and must not be its performer.
``refusal`` applies one such ``ActionRule`` to a person at a moment and says why not (a code,
catalogue ``permission.refused.<code>``), or "" when they may. The queues
(``gateway.store.queues``) ask it for every viewer and row; the hold actions can ask it again
inside their transaction, so what a page offers and what the action accepts agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from gateway.people.certification import CertStatus, status_at
from gateway.people.roles import ActionRule, HoldAction, actions_for
from gateway.people.tasks import WorkItem
from gateway.rules.facts import Facts

#: unknown to the store (no users row)
UNKNOWN_PERSON: Final = "unknown_person"
#: their account is disabled
INACTIVE: Final = "inactive"
#: none of the roles the action names
NO_ROLE: Final = "no_role"
#: they performed the result themselves (a second person must act)
OWN_RESULT: Final = "own_result"
#: not certified for the result's task at that moment (a trainee, expired, suspended, none)
NOT_CERTIFIED: Final = "not_certified"
#: every code ``refusal`` returns, in the order it checks them
REFUSALS: Final = (UNKNOWN_PERSON, INACTIVE, NO_ROLE, OWN_RESULT, NOT_CERTIFIED)


def is_certified(facts: Facts, person: str, work: WorkItem, at: datetime, zone: ZoneInfo) -> bool:
    """Whether ``person``'s most specific certification for ``work`` is certified at ``at``."""
    cert = facts.certification_for(person, work)
    return cert is not None and status_at(cert, at, zone) is CertStatus.CERTIFIED


def refusal(
    rule: ActionRule,
    facts: Facts,
    person: str,
    *,
    performer: str,
    work: WorkItem,
    at: datetime,
    zone: ZoneInfo,
    require_certification: bool = True,
) -> str:
    """Why ``person`` may not take ``rule``'s action on a result ``performer`` produced (the
    task ``work``) at ``at``: a code from ``REFUSALS``, or "" when they may.

    A result whose performer is unknown ("") has no performer to be: ``own_result`` cannot
    apply to it. ``require_certification`` is ``[people] enforce``: a site that has not
    imported its competence records yet still gets second-person checks of manual entries
    (role and another person), but nobody could be certified for them.
    """
    known = facts.people.get(person)
    if known is None:
        return UNKNOWN_PERSON
    if not known.active:
        return INACTIVE
    if known.roles.isdisjoint(rule.roles):
        return NO_ROLE
    if rule.other_person and performer and performer == person:
        return OWN_RESULT
    if rule.certified and require_certification and not is_certified(facts, person, work, at, zone):
        return NOT_CERTIFIED
    return ""


def action_rule(reason: str, action: HoldAction) -> ActionRule | None:
    """The rule for ``action`` on a hold with ``reason``; None when that action does not end
    it (deny by default)."""
    for rule in actions_for(reason):
        if rule.action is action:
            return rule
    return None
