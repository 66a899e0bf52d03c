"""What is done about a deviation (avvik), as tables: the state moves and the field edits, who
may make each, what each requires, and why it exists (the clause beside it). Pure: no I/O.

    open -> in_progress -> closed          (closed: signed, with a cause and a corrective action)
    closed -> in_progress                  (reopened by the quality manager, with a reason)

The procedure is the quality system's (seeds/002, "Behandle avvik"): ask for immediate actions
(strakstiltak), make sure a report is written, route it to the responsible function, review
it at the next practice meeting, change procedures where needed. Many reports are a sign of
a healthy culture, so anyone who works with results may report one by hand, add an immediate
action or a comment; the supervisor or the quality manager record the cause and the
corrective action and move the status; closing is an electronic signature.

"No corrective action needed" is a decision too: it is recorded with its reason (the reason
is the corrective-action text, ``corrective_action_needed`` false), so a closed deviation
always says what was done or why nothing was.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from gateway.people.roles import Role


class DevState(enum.StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"


class Edit(enum.StrEnum):
    """A change to a deviation's text that is not a state move (its history action)."""

    IMMEDIATE_ACTION = "immediate_action"
    CAUSE = "cause"
    CORRECTIVE_ACTION = "corrective_action"
    CATEGORY = "category"
    COMMENT = "comment"


class Need(enum.StrEnum):
    """What a move requires of the deviation or of the person making it."""

    CAUSE = "cause"  # the cause is recorded
    CORRECTIVE_ACTION = "corrective_action"  # a corrective action, or "none needed" with why
    REASON = "reason"  # the person says why (a reopening)
    SIGNATURE = "signature"  # the password again (an electronic signature)


class Refusal(enum.StrEnum):
    """Why a move or an edit is refused (``deviation.refused.<code>`` in the catalogues)."""

    NO_SUCH_DEVIATION = "no_such_deviation"
    NO_ROLE = "no_role"
    NOT_A_MOVE = "not_a_move"
    CLOSED = "closed"
    NEEDS_CAUSE = "needs_cause"
    NEEDS_CORRECTIVE_ACTION = "needs_corrective_action"
    NEEDS_REASON = "needs_reason"
    NOT_SIGNED = "not_signed"
    EMPTY = "empty"
    TOO_LONG = "too_long"
    UNCHANGED = "unchanged"
    UNKNOWN_CATEGORY = "unknown_category"


#: anyone who works with results: reports, immediate actions, comments (a reporting culture)
REPORTERS: Final = frozenset({Role.OPERATOR, Role.VERIFIER, Role.SUPERVISOR, Role.QUALITY_MANAGER})
#: who handles a deviation: records cause and corrective action, moves and closes it
HANDLERS: Final = frozenset({Role.SUPERVISOR, Role.QUALITY_MANAGER})
#: who reopens a closed deviation
REOPENERS: Final = frozenset({Role.QUALITY_MANAGER})
#: the longest text kept in one field (the forms say the same)
MAX_TEXT: Final = 4000
#: the longest summary (a one-line title)
MAX_SUMMARY: Final = 300

#: every state a deviation is still being worked on in
NOT_CLOSED: Final = frozenset({DevState.OPEN, DevState.IN_PROGRESS})


@dataclass(frozen=True, slots=True)
class Move:
    roles: frozenset[Role]
    needs: tuple[Need, ...]
    clause: str


#: (from, to) -> who may, what it needs, why it exists. A move not here is refused.
MOVES: Final[Mapping[tuple[DevState | None, DevState], Move]] = {
    (None, DevState.OPEN): Move(
        REPORTERS,
        (),
        "reported by hand by anyone who works with results (every error, near-miss and "
        "incident is reported), or recorded by the gateway itself (QC failure, lockout "
        "override, uncertified operator, rejected verification, LIS rejection, quarantine)",
    ),
    (DevState.OPEN, DevState.IN_PROGRESS): Move(
        HANDLERS,
        (),
        "the responsible function has taken it up: moved by hand, or by recording a cause or "
        "a corrective action on an open deviation",
    ),
    (DevState.IN_PROGRESS, DevState.CLOSED): Move(
        HANDLERS,
        (Need.CAUSE, Need.CORRECTIVE_ACTION, Need.SIGNATURE),
        "handled: the cause is known and a corrective action was taken (or recorded as not "
        "needed, with the reason); signed with the password, ready for the practice meeting",
    ),
    (DevState.CLOSED, DevState.IN_PROGRESS): Move(
        REOPENERS,
        (Need.REASON,),
        "reopened by the quality manager with a reason: the practice meeting or the annual "
        "quality review found it was not handled",
    ),
}


@dataclass(frozen=True, slots=True)
class EditRule:
    roles: frozenset[Role]
    states: frozenset[DevState]
    clause: str


#: edit -> who may, in which states, why
EDITS: Final[Mapping[Edit, EditRule]] = {
    Edit.IMMEDIATE_ACTION: EditRule(
        REPORTERS,
        NOT_CLOSED,
        "strakstiltak: whoever reports is asked what was done at once; it can be recorded "
        "while the deviation is open or in progress",
    ),
    Edit.CAUSE: EditRule(HANDLERS, NOT_CLOSED, "the handler records why it happened"),
    Edit.CORRECTIVE_ACTION: EditRule(
        HANDLERS,
        NOT_CLOSED,
        "the handler records what was changed so it does not happen again (a procedure, "
        "training, the equipment), or that nothing is needed and why",
    ),
    Edit.CATEGORY: EditRule(
        HANDLERS, NOT_CLOSED, "re-routed to another responsible function while it is handled"
    ),
    Edit.COMMENT: EditRule(
        REPORTERS,
        frozenset(DevState),
        "anyone who works with results may add what they know, also after it is closed "
        "(the practice meeting, the annual review)",
    ),
}


@dataclass(frozen=True, slots=True)
class Facts:
    """What a check needs to know about the deviation as it is now."""

    state: DevState
    cause: str = ""
    corrective_action: str = ""


def _may(roles: Iterable[Role], allowed: frozenset[Role]) -> bool:
    return not allowed.isdisjoint(roles)


def check_move(
    facts: Facts,
    to: DevState,
    roles: Iterable[Role],
    *,
    reason: str = "",
    signed: bool = False,
) -> Refusal | None:
    """Why ``to`` may not be reached from ``facts.state`` by someone with ``roles`` (None:
    it may). ``signed``: the password was asked again and was right."""
    move = MOVES.get((facts.state, to))
    if move is None:
        return Refusal.NOT_A_MOVE
    if not _may(roles, move.roles):
        return Refusal.NO_ROLE
    if Need.CAUSE in move.needs and not facts.cause.strip():
        return Refusal.NEEDS_CAUSE
    if Need.CORRECTIVE_ACTION in move.needs and not facts.corrective_action.strip():
        return Refusal.NEEDS_CORRECTIVE_ACTION
    if Need.REASON in move.needs and not reason.strip():
        return Refusal.NEEDS_REASON
    if len(reason) > MAX_TEXT:
        return Refusal.TOO_LONG
    if Need.SIGNATURE in move.needs and not signed:
        return Refusal.NOT_SIGNED
    return None


def check_report(roles: Iterable[Role], summary: str) -> Refusal | None:
    """Why a person with ``roles`` may not report a deviation with ``summary`` by hand."""
    if not _may(roles, MOVES[(None, DevState.OPEN)].roles):
        return Refusal.NO_ROLE
    if not summary.strip():
        return Refusal.EMPTY
    if len(summary) > MAX_SUMMARY:
        return Refusal.TOO_LONG
    return None


def check_edit(
    edit: Edit, state: DevState, roles: Iterable[Role], value: str, *, required: bool = True
) -> Refusal | None:
    """Why ``edit`` with ``value`` may not be made in ``state`` by someone with ``roles``.
    ``required``: an empty value is refused (a comment, an immediate action)."""
    rule = EDITS[edit]
    if not _may(roles, rule.roles):
        return Refusal.NO_ROLE
    if state not in rule.states:
        return Refusal.CLOSED
    if required and not value.strip():
        return Refusal.EMPTY
    if len(value) > MAX_TEXT:
        return Refusal.TOO_LONG
    return None


def moves_for(state: DevState, roles: Iterable[Role]) -> list[DevState]:
    """The states someone with ``roles`` may try to move a deviation in ``state`` to (what the
    page offers; the needs are checked when they try)."""
    held = frozenset(roles)
    return [to for (frm, to), move in MOVES.items() if frm is state and _may(held, move.roles)]


def edits_for(state: DevState, roles: Iterable[Role]) -> list[Edit]:
    """The edits someone with ``roles`` may make in ``state`` (what the page offers)."""
    held = frozenset(roles)
    return [e for e, rule in EDITS.items() if state in rule.states and _may(held, rule.roles)]


def move_name(frm: DevState, to: DevState) -> str:
    """The move's name for forms, the CLI and the texts: start, close, reopen."""
    if to is DevState.CLOSED:
        return "close"
    return "reopen" if frm is DevState.CLOSED else "start"
