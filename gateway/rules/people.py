"""The people rules: who performed a result, were they certified for it, and does a second
person need to look at it (DOMAIN rules 1, 2, 4, 5).

Pure functions over the result and the context's facts (``gateway.rules.facts``); they hold
nothing when ``[people] enforce`` is off, except a manual entry, which always waits for
verification (``verification_rule``). The moment that counts is when the analysis was
performed (``performed_at``), else when the result arrived (``context.now``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from drivers.model import Method
from gateway.model import Hold, HoldReason, Result
from gateway.people.certification import CertStatus, status_at
from gateway.people.roles import release_role
from gateway.people.tasks import WorkItem

if TYPE_CHECKING:
    from gateway.rules import RuleContext

#: why an operator is not certified (a hold's ``problem``; catalogue ``operator_problem.*``)
NO_OPERATOR = "no_operator"
UNKNOWN_OPERATOR = "unknown_operator"
INACTIVE_PERSON = "inactive_person"
NOT_CERTIFIED = "not_certified"


def work_item(result: Result, context: RuleContext) -> WorkItem:
    """The task ``result`` is: its instrument, the instrument's driver, its test and group."""
    test = context.find_test(result.instrument_id, result.test_code)
    return WorkItem(
        instrument_id=result.instrument_id,
        driver=context.drivers.get(result.instrument_id, ""),
        test_code=result.test_code,
        group=test.group if test is not None else "",
    )


def performer(result: Result, context: RuleContext) -> str | None:
    """Who performed ``result``: as recorded (a manual entry), else by its operator ID."""
    if result.performed_by:
        return result.performed_by
    return context.facts.person_for(result.instrument_id, result.operator_id)


def _when(result: Result, context: RuleContext) -> datetime:
    return result.performed_at or context.now or datetime.now(UTC)


def _uncertified(result: Result, work: WorkItem, problem: str) -> Hold:
    return Hold(
        reason=HoldReason.UNCERTIFIED_OPERATOR,
        params=(
            ("operator", result.operator_id or "–"),
            ("instrument", result.instrument_id),
            ("task", f"{work.instrument_id}:{work.test_code}"),
            ("operator_problem", problem),
        ),
        release_role=release_role(HoldReason.UNCERTIFIED_OPERATOR),
    )


def certification_rule(result: Result, context: RuleContext) -> Sequence[Hold]:
    """Hold a result whose performer is unknown, inactive or not certified for its task at the
    time (``uncertified_operator``); a trainee's result waits for a co-signature."""
    if not context.enforce_people:
        return ()
    work = work_item(result, context)
    person = performer(result, context)
    if person is None:
        problem = UNKNOWN_OPERATOR if result.operator_id else NO_OPERATOR
        return (_uncertified(result, work, problem),)
    facts = context.facts
    known = facts.people.get(person)
    if known is None or not known.active:
        return (_uncertified(result, work, INACTIVE_PERSON),)
    cert = facts.certification_for(person, work)
    status = status_at(cert, _when(result, context), context.zone) if cert else None
    if status is CertStatus.CERTIFIED:
        return ()
    if status is CertStatus.TRAINEE:
        assert cert is not None
        return (
            Hold(
                reason=HoldReason.AWAITING_COSIGN,
                params=(
                    ("person", person),
                    ("task", f"{work.instrument_id}:{work.test_code}"),
                    ("supervisor", cert.supervisor or "–"),
                ),
                release_role=release_role(HoldReason.AWAITING_COSIGN),
            ),
        )
    return (_uncertified(result, work, status.value if status else NOT_CERTIFIED),)


def is_second_look(result: Result, context: RuleContext) -> bool:
    """Whether a person read or typed ``result`` (the driver said so, or its test is visual)."""
    if result.method in (Method.VISUAL, Method.MANUAL):
        return True
    test = context.find_test(result.instrument_id, result.test_code)
    return test is not None and test.method in (Method.VISUAL, Method.MANUAL)


def verification_rule(result: Result, context: RuleContext) -> Sequence[Hold]:
    """Hold a visual reading or a manual entry until a second person verifies it.

    A result typed in by hand (method ``manual``) is held whatever ``[people] enforce`` says:
    DOMAIN rule 5 is a routine check of the typing, not a matter of the competence records
    that ``enforce`` waits for. Holding it here (not in the entry service) keeps it held when
    the rules run again (a correction re-runs them).
    """
    manual = result.method is Method.MANUAL
    if not manual and not (context.enforce_people and is_second_look(result, context)):
        return ()
    test = context.find_test(result.instrument_id, result.test_code)
    # the driver's word first; a measured value of a test the site reads by eye is visual
    method: Method = result.method
    if method is Method.MEASURED:
        method = test.method if test is not None else Method.VISUAL
    return (
        Hold(
            reason=HoldReason.AWAITING_VERIFICATION,
            params=(("method", method.value), ("test", result.test_code)),
            release_role=release_role(HoldReason.AWAITING_VERIFICATION),
        ),
    )
