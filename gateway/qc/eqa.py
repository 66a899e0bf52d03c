"""EQA (EKV) rounds and split samples, pure: the round's moves as a table, the programme's
grades, and the split-sample difference against the central lab (no I/O: ``gateway.store.eqa``
stores what these decide).

A round is registered when the shipment arrives, answered when the lab has sent its values to
the programme (signed), and assessed when the programme's report has been recorded for every
sample (signed). Noklus (and most programmes) grade a result good / acceptable / poor
("god", "akseptabel", "dårlig") for trueness, accuracy and precision; a programme may report
only some of the three. A poor grade opens a deviation (DOMAIN rule 9: follow up poor results).

A split sample is one patient sample measured here and at the central lab; the difference in
per cent of the central lab's value is judged against the analyte's allowed difference (Noklus
uses 15 % or 20 % depending on the analyte; ``[[tests]] split_allowed_percent``, default 20).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Final

from gateway.people.roles import Role


class RoundState(enum.StrEnum):
    REGISTERED = "registered"
    ANSWERED = "answered"
    ASSESSED = "assessed"


#: (from, to) -> why the move exists; a move not here is refused
TRANSITIONS: Final[Mapping[tuple[RoundState | None, RoundState], str]] = {
    (None, RoundState.REGISTERED): "the shipment arrived and was registered",
    (RoundState.REGISTERED, RoundState.ANSWERED): (
        "every sample has a value and the answer was signed and sent to the programme"
    ),
    (RoundState.ANSWERED, RoundState.ASSESSED): (
        "the programme's assessment was recorded for every sample"
    ),
}


class Grade(enum.StrEnum):
    """The programme's grade of one quality of one result."""

    GOOD = "good"
    ACCEPTABLE = "acceptable"
    POOR = "poor"


#: who registers rounds and samples and records the programme's assessment
EQA_MANAGERS: Final = frozenset({Role.QUALITY_MANAGER, Role.SUPERVISOR})
#: who enters or links the measured values, signs the answer and records split samples
EQA_ENTRY: Final = frozenset({Role.VERIFIER, Role.SUPERVISOR, Role.QUALITY_MANAGER})

#: the qualities a programme grades, in the order its report shows them
QUALITIES: Final = ("trueness", "accuracy", "precision")
#: the allowed split-sample difference when the test names none (Noklus' wider limit)
DEFAULT_SPLIT_ALLOWED_PERCENT: Final = 20.0


class EqaRuleError(ValueError):
    """What a person asked breaks a rule of the round; ``code`` names it
    (catalogue ``eqa.refused.<code>``)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def may_move(old: RoundState | None, new: RoundState) -> bool:
    return (old, new) in TRANSITIONS


def check_move(old: RoundState | None, new: RoundState) -> None:
    if not may_move(old, new):
        raise EqaRuleError(f"state_{old.value if old else 'none'}")


@dataclass(frozen=True, slots=True)
class Assessment:
    """The programme's grades for one sample; "" where the programme reports none."""

    trueness: Grade | None = None
    accuracy: Grade | None = None
    precision: Grade | None = None

    @property
    def graded(self) -> bool:
        return any(g is not None for g in (self.trueness, self.accuracy, self.precision))

    @property
    def poor(self) -> tuple[str, ...]:
        """The qualities graded poor (a deviation is opened when there is one)."""
        grades = (self.trueness, self.accuracy, self.precision)
        return tuple(q for q, g in zip(QUALITIES, grades, strict=True) if g is Grade.POOR)


def parse_grade(text: str) -> Grade | None:
    """A grade from a form or the command line ("" or "-": not reported)."""
    cleaned = text.strip().lower()
    if cleaned in ("", "-"):
        return None
    try:
        return Grade(cleaned)
    except ValueError:
        raise EqaRuleError("bad_grade") from None


def assessment(trueness: str, accuracy: str, precision: str) -> Assessment:
    """An assessment from three texts; at least one grade is needed."""
    made = Assessment(parse_grade(trueness), parse_grade(accuracy), parse_grade(precision))
    if not made.graded:
        raise EqaRuleError("no_grade")
    return made


def parse_number(text: str) -> Decimal:
    """A measured value as a decimal; a decimal comma is accepted ("5,3"). Anything else
    (``<0.5``, ``neg``) is not a number a difference can be computed of."""
    cleaned = text.strip().replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise EqaRuleError("not_number") from None
    if not value.is_finite():
        raise EqaRuleError("not_number")
    return value


def split_allowed(allowed_percent: float | None) -> Decimal:
    """The allowed difference for a test (None: the default 20 %)."""
    chosen = DEFAULT_SPLIT_ALLOWED_PERCENT if allowed_percent is None else allowed_percent
    return Decimal(str(chosen))


@dataclass(frozen=True, slots=True)
class SplitJudgement:
    """A split sample judged: the difference in per cent of the central lab's value."""

    local: Decimal
    central: Decimal
    allowed_percent: Decimal
    difference_percent: Decimal
    within: bool

    @property
    def difference_text(self) -> str:
        """The difference rounded to one decimal, as stored and shown ("+12.5", "-3.0")."""
        return f"{self.difference_percent.quantize(Decimal('0.1')):+}"


def judge_split(local: str, central: str, allowed_percent: float | None) -> SplitJudgement:
    """difference % = (local - central) / central * 100; within when |difference| <= allowed.

    Decimal arithmetic: a difference of exactly the allowed per cent is within (11.5 against
    10.0 is 15 %, not 15.000000000000002 % as in binary floating point).
    """
    here = parse_number(local)
    there = parse_number(central)
    if there == 0:
        raise EqaRuleError("central_zero")
    allowed = split_allowed(allowed_percent)
    difference = (here - there) / there * 100
    return SplitJudgement(here, there, allowed, difference, abs(difference) <= allowed)


def overdue(state: RoundState, due_on: date | None, today: date) -> bool:
    """A round not answered by its due date (shown, not a state: it can still be answered)."""
    return state is RoundState.REGISTERED and due_on is not None and today > due_on
