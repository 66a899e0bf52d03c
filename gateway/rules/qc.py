"""The QC lockout rule: a patient result measured while its instrument's QC for the test is out
of control or overdue is held (DOMAIN rules 6-7).

A dict lookup per result: ``context.qc`` (the `[[qc]]` entry) and ``context.facts.qc`` (the
``qc_status`` row). Only ``lockout = "hold"`` holds; ``lockout = "flag"`` lets the result go
on with a note (``qc_flag``). A test whose controls were due before the result was performed is
held (or flagged) even before the watcher marked it overdue (``due_at``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.model import Hold, HoldReason, Params, Result
from gateway.people.roles import release_role
from gateway.qc.schedule import is_overdue
from gateway.rules.facts import LOCKED_OUT, QcStatus

if TYPE_CHECKING:
    from gateway.rules import RuleContext


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _lockout_params(result: Result, context: RuleContext, mode: str) -> Params | None:
    """What a hold or a flag names when ``result``'s QC is locked out and its test's
    ``lockout`` is ``mode``; None when the result may go on as it is."""
    key = (result.instrument_id, result.test_code)
    qc = context.qc.get(key)
    if qc is None or qc.lockout != mode:
        return None
    fact = context.facts.qc.get(key)
    if fact is None:
        return None
    status = fact.status
    since = fact.since
    if status not in LOCKED_OUT:
        when = result.performed_at or context.now or datetime.now(UTC)
        due = _aware(fact.due_at) if fact.due_at is not None else None
        if not is_overdue(due, _aware(when)):
            return None
        status = QcStatus.OVERDUE
        since = due or since
    return (
        ("instrument", result.instrument_id),
        ("test", result.test_code),
        # "qc_state", not "status": the catalogue renders it as words (qc_status.*)
        ("qc_state", status.value),
        ("rules", fact.rules or "-"),
        # shown as is: the site's local time, to the minute
        ("since", _aware(since).astimezone(context.zone).strftime("%Y-%m-%d %H:%M")),
    )


def qc_lockout_rule(result: Result, context: RuleContext) -> Sequence[Hold]:
    """Hold ``result`` (``qc_lockout``) while its test's QC on its instrument is locked out."""
    params = _lockout_params(result, context, "hold")
    if params is None:
        return ()
    return (
        Hold(
            reason=HoldReason.QC_LOCKOUT,
            params=params,
            release_role=release_role(HoldReason.QC_LOCKOUT),
        ),
    )


def qc_flag(result: Result, context: RuleContext) -> Params | None:
    """For a test with ``lockout = "flag"``: what the note on ``result`` names while its QC is
    locked out (it goes on, marked; ``gateway.ingest`` writes the note); None otherwise."""
    return _lockout_params(result, context, "flag")
