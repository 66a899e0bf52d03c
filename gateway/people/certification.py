"""A certification's status, and what it is on a given day.

A certification whose ``recert_due`` has passed counts as expired from the next midnight in
the site's time zone (Europe/Oslo): due 2026-12-07 means valid through that day, expired from
2026-12-08 00:00 Oslo time. A certification dated after the work was done did not cover it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.people.tasks import Task


class CertStatus(enum.StrEnum):
    TRAINEE = "trainee"
    CERTIFIED = "certified"
    EXPIRED = "expired"
    SUSPENDED = "suspended"


@dataclass(frozen=True, slots=True)
class Certification:
    """One person's certification for one task, as the competence records hold it."""

    person: str
    task: Task
    status: CertStatus
    certified_on: date | None = None
    recert_due: date | None = None
    supervisor: str = ""


@dataclass(frozen=True, slots=True)
class CertificationRecord:
    """A certification as the competence records state it (one CSV row's task part)."""

    person: str
    task: str  # canonical text (``str(parse_task(...))``)
    status: CertStatus
    certified_on: date | None = None
    recert_due: date | None = None
    supervisor: str = ""
    evidence: str = ""


def expires_at(recert_due: date, zone: ZoneInfo) -> datetime:
    """The moment a certification due on ``recert_due`` expires: the next midnight in ``zone``."""
    return datetime.combine(recert_due + timedelta(days=1), time(0), tzinfo=zone)


def status_at(cert: Certification, at: datetime, zone: ZoneInfo) -> CertStatus | None:
    """What ``cert`` was at ``at``; None when it did not exist yet (``certified_on`` later).

    Only certified and trainee statuses age: a recertification due date that has passed makes
    either expired. Suspended and expired stay what they are.
    """
    if cert.status in (CertStatus.SUSPENDED, CertStatus.EXPIRED):
        return cert.status
    if cert.certified_on is not None and cert.status is CertStatus.CERTIFIED:
        started = datetime.combine(cert.certified_on, time(0), tzinfo=zone)
        if at < started:
            return None
    if cert.recert_due is not None and at >= expires_at(cert.recert_due, zone):
        return CertStatus.EXPIRED
    return cert.status
