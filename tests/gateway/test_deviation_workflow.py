"""The deviation workflow's tables: every allowed move and edit, every refused one, written out
here from the design (seeds/002 "Behandle avvik"; issue 11 item 8), not derived from the code."""

from __future__ import annotations

import itertools

import pytest

from gateway.deviations.workflow import (
    EDITS,
    MAX_TEXT,
    MOVES,
    DevState,
    Edit,
    Facts,
    Refusal,
    check_edit,
    check_move,
    check_report,
    edits_for,
    move_name,
    moves_for,
)
from gateway.people.roles import Role

OPEN, PROGRESS, CLOSED = DevState.OPEN, DevState.IN_PROGRESS, DevState.CLOSED
OP, VER, SUP, QM, ADMIN = (
    Role.OPERATOR,
    Role.VERIFIER,
    Role.SUPERVISOR,
    Role.QUALITY_MANAGER,
    Role.ADMIN,
)
HANDLED = Facts(PROGRESS, cause="Reagens utløpt", corrective_action="Ny rutine for lotbytte")

#: (from, to) -> the roles that may, written by hand
ALLOWED_MOVES = {
    (OPEN, PROGRESS): {SUP, QM},
    (PROGRESS, CLOSED): {SUP, QM},
    (CLOSED, PROGRESS): {QM},
}


def test_the_table_has_exactly_the_designed_moves() -> None:
    assert set(MOVES) == {(None, OPEN), *ALLOWED_MOVES}
    assert all(move.clause for move in MOVES.values())
    assert all(rule.clause for rule in EDITS.values())


@pytest.mark.parametrize(("frm", "to"), list(itertools.product(DevState, DevState)))
@pytest.mark.parametrize("role", list(Role))
def test_every_move_with_every_role(frm: DevState, to: DevState, role: Role) -> None:
    facts = Facts(frm, cause=HANDLED.cause, corrective_action=HANDLED.corrective_action)
    refusal = check_move(facts, to, {role}, reason="Ikke fulgt opp", signed=True)
    if (frm, to) not in ALLOWED_MOVES:
        assert refusal is Refusal.NOT_A_MOVE
    elif role in ALLOWED_MOVES[(frm, to)]:
        assert refusal is None
    else:
        assert refusal is Refusal.NO_ROLE


@pytest.mark.parametrize("role", [SUP, QM])
def test_closing_needs_a_cause_a_corrective_action_and_a_signature(role: Role) -> None:
    assert check_move(Facts(PROGRESS), CLOSED, {role}, signed=True) is Refusal.NEEDS_CAUSE
    only_cause = Facts(PROGRESS, cause="Feil lot")
    assert check_move(only_cause, CLOSED, {role}, signed=True) is (Refusal.NEEDS_CORRECTIVE_ACTION)
    blank = Facts(PROGRESS, cause="  ", corrective_action="Ny rutine")
    assert check_move(blank, CLOSED, {role}, signed=True) is Refusal.NEEDS_CAUSE
    assert check_move(HANDLED, CLOSED, {role}, signed=False) is Refusal.NOT_SIGNED
    assert check_move(HANDLED, CLOSED, {role}, signed=True) is None


def test_an_open_deviation_is_not_closed_without_being_taken_up() -> None:
    facts = Facts(OPEN, cause=HANDLED.cause, corrective_action=HANDLED.corrective_action)
    assert check_move(facts, CLOSED, {QM}, signed=True) is Refusal.NOT_A_MOVE


def test_reopening_needs_a_reason_and_the_quality_manager() -> None:
    closed = Facts(CLOSED, cause="x", corrective_action="y")
    assert check_move(closed, PROGRESS, {QM}) is Refusal.NEEDS_REASON
    assert check_move(closed, PROGRESS, {QM}, reason="   ") is Refusal.NEEDS_REASON
    assert check_move(closed, PROGRESS, {SUP}, reason="Gjentar seg") is Refusal.NO_ROLE
    assert check_move(closed, PROGRESS, {QM}, reason="Gjentar seg") is None
    long = "x" * (MAX_TEXT + 1)
    assert check_move(closed, PROGRESS, {QM}, reason=long) is Refusal.TOO_LONG


def test_the_role_is_checked_before_what_the_move_needs() -> None:
    assert check_move(Facts(PROGRESS), CLOSED, {OP}) is Refusal.NO_ROLE
    assert check_move(Facts(PROGRESS), CLOSED, set()) is Refusal.NO_ROLE


#: edit -> (roles, states) it is allowed for, written by hand
ALLOWED_EDITS = {
    Edit.IMMEDIATE_ACTION: ({OP, VER, SUP, QM}, {OPEN, PROGRESS}),
    Edit.CAUSE: ({SUP, QM}, {OPEN, PROGRESS}),
    Edit.CORRECTIVE_ACTION: ({SUP, QM}, {OPEN, PROGRESS}),
    Edit.CATEGORY: ({SUP, QM}, {OPEN, PROGRESS}),
    Edit.COMMENT: ({OP, VER, SUP, QM}, {OPEN, PROGRESS, CLOSED}),
}


@pytest.mark.parametrize("edit", list(Edit))
@pytest.mark.parametrize("state", list(DevState))
@pytest.mark.parametrize("role", list(Role))
def test_every_edit_in_every_state_with_every_role(edit: Edit, state: DevState, role: Role) -> None:
    roles, states = ALLOWED_EDITS[edit]
    refusal = check_edit(edit, state, {role}, "Byttet til ny kontroll-lot")
    if role not in roles:
        assert refusal is Refusal.NO_ROLE
    elif state not in states:
        assert refusal is Refusal.CLOSED
    else:
        assert refusal is None


def test_edit_texts() -> None:
    assert check_edit(Edit.COMMENT, OPEN, {OP}, "  ") is Refusal.EMPTY
    assert check_edit(Edit.CAUSE, OPEN, {SUP}, "", required=False) is None  # may be cleared
    assert check_edit(Edit.COMMENT, OPEN, {OP}, "x" * (MAX_TEXT + 1)) is Refusal.TOO_LONG


def test_reporting_by_hand_is_for_everyone_who_works_with_results() -> None:
    for role in (OP, VER, SUP, QM):
        assert check_report({role}, "Prøve merket med feil etikett") is None
    assert check_report({ADMIN}, "Prøve merket med feil etikett") is Refusal.NO_ROLE
    assert check_report({OP}, " ") is Refusal.EMPTY
    assert check_report({OP}, "x" * 301) is Refusal.TOO_LONG


def test_what_the_page_offers() -> None:
    assert moves_for(OPEN, {OP}) == []
    assert moves_for(OPEN, {SUP}) == [PROGRESS]
    assert moves_for(PROGRESS, {QM}) == [CLOSED]
    assert moves_for(CLOSED, {SUP}) == []
    assert moves_for(CLOSED, {QM}) == [PROGRESS]
    assert edits_for(CLOSED, {OP}) == [Edit.COMMENT]
    assert edits_for(OPEN, {OP}) == [Edit.IMMEDIATE_ACTION, Edit.COMMENT]
    assert set(edits_for(PROGRESS, {SUP})) == set(Edit)
    assert [move_name(OPEN, PROGRESS), move_name(PROGRESS, CLOSED)] == ["start", "close"]
    assert move_name(CLOSED, PROGRESS) == "reopen"
