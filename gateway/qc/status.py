"""The QC status of an instrument's test as a state table: what a judged run or a missed
schedule does to it, and whether a lockout opens. Pure.

The states are ``gateway.rules.facts.QcStatus``. While a lockout is open the status stays where
the lockout put it (out of control, overdue): an accepted run alone does not end it, nor does a
documented corrective action alone; both together lift it (``lift``). A failing run during an
overdue lockout makes it out of control (the lockout stays the same one). With ``[[qc]] lockout
= "off"`` no lockout opens: the status follows the last run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.rules.facts import QcStatus

#: what happens: a run judged (its worst verdict), or the schedule's controls not run in time
Event = Literal["accept", "warning", "reject", "overdue"]


@dataclass(frozen=True, slots=True)
class Step:
    """The status after an event; ``keep``: unchanged; ``open_lockout``: a lockout starts."""

    status: QcStatus | None
    open_lockout: bool = False


_KEEP = Step(None)

#: (event, a lockout is open) -> the step; the lockout mode decides only whether one opens
TABLE: dict[tuple[Event, bool], Step] = {
    ("accept", False): Step(QcStatus.IN_CONTROL),
    ("warning", False): Step(QcStatus.WARNING),
    ("reject", False): Step(QcStatus.OUT_OF_CONTROL, open_lockout=True),
    ("overdue", False): Step(QcStatus.OVERDUE, open_lockout=True),
    # locked: runs are recorded (an accepted one counts towards the lift), the status stays
    ("accept", True): _KEEP,
    ("warning", True): _KEEP,
    ("reject", True): Step(QcStatus.OUT_OF_CONTROL),
    ("overdue", True): _KEEP,
}


def next_status(current: QcStatus, event: Event, *, locked: bool, lockout: str) -> Step:
    """The step for ``event`` from ``current``; ``lockout`` is the `[[qc]]` mode (hold, flag,
    off): "off" never opens a lockout, and an overdue "off" test is only shown overdue."""
    step = TABLE[(event, locked)]
    if event == "overdue" and current == QcStatus.OUT_OF_CONTROL:
        return _KEEP  # failing is worse than late: keep the failure shown
    if step.open_lockout and lockout == "off":
        return Step(step.status)
    return step


def worst(verdicts: list[str]) -> Event:
    """A run's event from its levels' verdicts (no_target and pass count as accept, fail as
    reject)."""
    if any(v in ("reject", "fail") for v in verdicts):
        return "reject"
    if any(v == "warning" for v in verdicts):
        return "warning"
    return "accept"


def lifts(*, accepted: bool, corrective_action: bool) -> bool:
    """A lockout lifts only when an accepted run followed it AND a corrective action is
    documented (DOMAIN rule 7)."""
    return accepted and corrective_action
