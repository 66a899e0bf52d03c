"""The facts rules read from the store (people, certifications, QC status): plain frozen data."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


class QcStatus(enum.StrEnum):
    """Where an instrument's QC for one test stands; the QC issue fills it, its rules read it."""

    PASSED = "passed"
    FAILED = "failed"
    DUE = "due"


def _no_certifications() -> Mapping[str, frozenset[str]]:
    return MappingProxyType({})


def _no_qc() -> Mapping[tuple[str, str], QcStatus]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Facts:
    """A snapshot of the store's facts, read once and shared by every rule until one changes.

    ``certifications`` maps an operator ID (as instruments report it) to the tasks that
    operator is certified for; ``qc`` maps (instrument id, test code) to its QC status. Both
    are empty until the people and QC issues fill them; a rule must treat a missing entry as
    "not known", which those issues define per rule.
    """

    certifications: Mapping[str, frozenset[str]] = field(default_factory=_no_certifications)
    qc: Mapping[tuple[str, str], QcStatus] = field(default_factory=_no_qc)

    def __post_init__(self) -> None:
        # a snapshot is shared across threads and batches: nobody may change it in place
        object.__setattr__(self, "certifications", MappingProxyType(dict(self.certifications)))
        object.__setattr__(self, "qc", MappingProxyType(dict(self.qc)))

    def certified(self, operator_id: str, task: str) -> bool:
        """Whether ``operator_id`` holds a certification for ``task``."""
        return task in self.certifications.get(operator_id, frozenset())

    def qc_status(self, instrument_id: str, test_code: str) -> QcStatus | None:
        """The QC status of ``test_code`` on ``instrument_id``; None when none is recorded."""
        return self.qc.get((instrument_id, test_code))
