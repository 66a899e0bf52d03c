"""The facts rules read from the store (people, certifications, QC status): plain frozen data."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from gateway.people.certification import Certification
from gateway.people.roles import Role
from gateway.people.tasks import WorkItem, specificity


class QcStatus(enum.StrEnum):
    """Where an instrument's QC for one test stands (``qc_status.status``)."""

    IN_CONTROL = "in_control"
    #: a warning rule (1-2s) fired on the last run: results go on, the chart says look
    WARNING = "warning"
    OUT_OF_CONTROL = "out_of_control"
    #: the schedule's controls were not run in time
    OVERDUE = "overdue"
    #: no control has been judged yet (no lot, or the first N runs are being collected)
    NO_QC = "no_qc"


#: the statuses under which patient results are locked out (``[[qc]] lockout``)
LOCKED_OUT = frozenset({QcStatus.OUT_OF_CONTROL, QcStatus.OVERDUE})


@dataclass(frozen=True, slots=True)
class QcFact:
    """An instrument's QC for one test as rules see it (``qc_status``'s row)."""

    status: QcStatus
    since: datetime
    #: the next controls are due then (time-based schedules); a result performed later is
    #: overdue even before the watcher has marked it
    due_at: datetime | None = None
    #: the open lockout (``qc_lockouts.id``), if any
    lockout_id: int | None = None
    #: the reject rules that fired on the run that opened the lockout ("2-2s,R-4s")
    rules: str = ""


@dataclass(frozen=True, slots=True)
class Person:
    """A person as rules see them: roles, and whether their account is active."""

    person: str
    name: str = ""
    roles: frozenset[Role] = frozenset()
    active: bool = True


def _empty() -> Mapping[Any, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Facts:
    """A snapshot of the store's facts, read once and shared by every rule until one changes.

    ``operators`` maps (instrument id, operator ID as the instrument reports it) to a person;
    instrument "" is an ID that person uses on every instrument. ``certifications`` maps a
    person to their certifications; ``people`` a person to their roles. ``qc`` maps
    (instrument id, test code) to its QC status. A missing entry means "not known": the rule
    that reads it says what that means.
    """

    operators: Mapping[tuple[str, str], str] = field(default_factory=_empty)
    certifications: Mapping[str, tuple[Certification, ...]] = field(default_factory=_empty)
    people: Mapping[str, Person] = field(default_factory=_empty)
    qc: Mapping[tuple[str, str], QcFact] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        # a snapshot is shared across threads and batches: nobody may change it in place
        for name in ("operators", "certifications", "people", "qc"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))

    def person_for(self, instrument_id: str, operator_id: str) -> str | None:
        """Who uses ``operator_id`` on ``instrument_id`` (an instrument-specific ID first)."""
        if not operator_id:
            return None
        found = self.operators.get((instrument_id, operator_id))
        return found if found is not None else self.operators.get(("", operator_id))

    def certification_for(self, person: str, work: WorkItem) -> Certification | None:
        """The most specific of ``person``'s certifications that covers ``work``."""
        best: tuple[int, Certification] | None = None
        for cert in self.certifications.get(person, ()):
            score = specificity(cert.task, work)
            if score is not None and (best is None or score > best[0]):
                best = (score, cert)
        return best[1] if best else None

    def has_role(self, person: str, *roles: Role) -> bool:
        """Whether ``person`` is active and holds any of ``roles``."""
        found = self.people.get(person)
        return found is not None and found.active and not found.roles.isdisjoint(roles)

    def qc_status(self, instrument_id: str, test_code: str) -> QcFact | None:
        """The QC status of ``test_code`` on ``instrument_id``; None when none is recorded."""
        return self.qc.get((instrument_id, test_code))
