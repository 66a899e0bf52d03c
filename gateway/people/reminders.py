"""Recertification reminders and inactivity warnings (DOMAIN rules 10 and 11), computed from
certifications, the time and each person's last work on a task: pure, the time an argument.

* ``reminder``: a certified certification due within ``[people] reminder_days`` (due today
  counts: it is valid through that day in Oslo); ``days`` is the days left.
* ``overdue``: a certification recorded as certified whose due date has passed (expired from
  the next midnight, ``gateway.people.certification``); ``days`` since the due date. One the
  records already say is expired or suspended gets no notice: the lab knows.
* ``inactive``: a certification newer than ``new_certification_days`` whose person has not
  done its task for ``inactivity_days`` (0: off), counted from their last result of the task
  or, when there is none since, from the certification date; ``days`` without the task.

Days are calendar days in the site's time zone (Europe/Oslo).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from gateway.people.certification import Certification, CertStatus, status_at
from gateway.people.tasks import WorkItem, specificity


class NoticeKind(enum.StrEnum):
    REMINDER = "reminder"
    OVERDUE = "overdue"
    INACTIVE = "inactive"


@dataclass(frozen=True, slots=True)
class Activity:
    """A person's last result of one kind of work (an instrument and a test)."""

    person: str
    work: WorkItem
    last: datetime


@dataclass(frozen=True, slots=True)
class NoticeRules:
    """``[people]``'s numbers (``PeopleConfig`` has them under these names)."""

    reminder_days: int = 30
    inactivity_days: int = 30
    new_certification_days: int = 180


@dataclass(frozen=True, slots=True)
class Notice:
    """One certification that needs attention; ``days`` as the module docstring says."""

    person: str
    task: str
    kind: NoticeKind
    days: int
    due: date | None = None
    certified_on: date | None = None
    last_activity: date | None = None
    supervisor: str = ""

    def event(self) -> dict[str, object]:
        """The MQTT ``certification`` event's payload: staff data only, no patient data.
        (``notice``, not ``kind``: the bus's envelope sets ``kind`` to the event's kind.)"""
        return {
            "person": self.person,
            "task": self.task,
            "notice": self.kind.value,
            "due": self.due.isoformat() if self.due else "",
            "days": self.days,
        }


def notices(
    certifications: Iterable[Certification],
    activity: Iterable[Activity],
    now: datetime,
    *,
    zone: ZoneInfo,
    rules: NoticeRules,
) -> list[Notice]:
    """Every notice due at ``now``, by kind (overdue, reminder, inactive), then person, task."""
    today = now.astimezone(zone).date()
    by_person: dict[str, list[Activity]] = {}
    for item in activity:
        by_person.setdefault(item.person, []).append(item)
    found: list[Notice] = []
    for cert in certifications:
        found += _due_notice(cert, now, today, zone, rules)
        found += _inactivity_notice(cert, by_person.get(cert.person, ()), now, today, zone, rules)
    order = {
        kind: index
        for index, kind in enumerate((NoticeKind.OVERDUE, NoticeKind.REMINDER, NoticeKind.INACTIVE))
    }
    return sorted(found, key=lambda n: (order[n.kind], n.person, n.task))


def _notice(cert: Certification, kind: NoticeKind, days: int, last: date | None = None) -> Notice:
    return Notice(
        person=cert.person,
        task=str(cert.task),
        kind=kind,
        days=days,
        due=cert.recert_due,
        certified_on=cert.certified_on,
        last_activity=last,
        supervisor=cert.supervisor,
    )


def _due_notice(
    cert: Certification, now: datetime, today: date, zone: ZoneInfo, rules: NoticeRules
) -> list[Notice]:
    if cert.status is not CertStatus.CERTIFIED or cert.recert_due is None:
        return []
    status = status_at(cert, now, zone)
    if status is CertStatus.EXPIRED:
        return [_notice(cert, NoticeKind.OVERDUE, (today - cert.recert_due).days)]
    left = (cert.recert_due - today).days
    if status is CertStatus.CERTIFIED and 0 <= left <= rules.reminder_days:
        return [_notice(cert, NoticeKind.REMINDER, left)]
    return []


def last_done(cert: Certification, activity: Iterable[Activity], zone: ZoneInfo) -> date | None:
    """The day (in ``zone``) ``cert``'s person last did work its task covers."""
    days = [
        item.last.astimezone(zone).date()
        for item in activity
        if specificity(cert.task, item.work) is not None
    ]
    return max(days) if days else None


def _inactivity_notice(
    cert: Certification,
    activity: Iterable[Activity],
    now: datetime,
    today: date,
    zone: ZoneInfo,
    rules: NoticeRules,
) -> list[Notice]:
    if rules.inactivity_days <= 0 or cert.certified_on is None:
        return []
    if status_at(cert, now, zone) is not CertStatus.CERTIFIED:
        return []
    if not 0 <= (today - cert.certified_on).days < rules.new_certification_days:
        return []
    last = last_done(cert, activity, zone)
    since = max(last, cert.certified_on) if last else cert.certified_on
    idle = (today - since).days
    if idle < rules.inactivity_days:
        return []
    return [_notice(cert, NoticeKind.INACTIVE, idle, last)]
