"""The store's side of recertification reminders and inactivity warnings: the notices due now
(``gateway.people.reminders`` over the store's certifications and each person's last work),
the due list the pages show, and the job that announces them as MQTT ``certification`` events.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from gateway.config import Config
from gateway.people.certification import status_at
from gateway.people.reminders import Activity, Notice, NoticeRules, notices
from gateway.people.tasks import WorkItem
from gateway.store.people import last_activity, load_people
from gateway.store.writer import Tx


def notice_rules(config: Config) -> NoticeRules:
    people = config.people
    return NoticeRules(
        reminder_days=people.reminder_days,
        inactivity_days=people.inactivity_days,
        new_certification_days=people.new_certification_days,
    )


def _work(config: Config) -> tuple[Mapping[str, str], Mapping[tuple[str, str], str]]:
    drivers = {inst.id: inst.driver for inst in config.instruments}
    groups = {(test.instrument, test.code): test.group for test in config.tests if test.group}
    return drivers, groups


def notices_now(conn: Connection, now: datetime, config: Config) -> list[Notice]:
    """Every reminder, overdue and inactivity notice at ``now`` (``gateway.people.reminders``)."""
    zone = ZoneInfo(config.site.timezone)
    rules = notice_rules(config)
    facts = load_people(conn)
    certs = [cert for person_certs in facts.certifications.values() for cert in person_certs]
    # only work since the oldest certification that still counts as new can matter
    since = now - timedelta(days=rules.new_certification_days + 1)
    drivers, groups = _work(config)
    activity = [
        Activity(
            person,
            WorkItem(
                instrument_id=instrument,
                driver=drivers.get(instrument, ""),
                test_code=test,
                group=groups.get((instrument, test)) or groups.get(("", test), ""),
            ),
            last,
        )
        for person, instrument, test, last in last_activity(conn, since)
    ]
    return notices(certs, activity, now, zone=zone, rules=rules)


def due_list(conn: Connection, today: date, config: Config) -> list[dict[str, object]]:
    """The recertification due list (overdue, then due within ``[people] reminder_days``, then
    inactivity warnings) for ``today`` in the site's time zone, as plain rows::

        {"person", "name", "task", "kind": "overdue" | "reminder" | "inactive",
         "days": int (overdue: days since due; reminder: days left; inactive: days idle),
         "recert_due": "YYYY-MM-DD" | "", "certified_on": "YYYY-MM-DD" | "",
         "last_activity": "YYYY-MM-DD" | "", "supervisor": str,
         "status": the certification's status today}
    """
    zone = ZoneInfo(config.site.timezone)
    at = datetime.combine(today, time(12), tzinfo=zone)  # any time of the day gives the same
    facts = load_people(conn)
    certs = {(c.person, str(c.task)): c for cs in facts.certifications.values() for c in cs}
    rows: list[dict[str, object]] = []
    for notice in notices_now(conn, at, config):
        person = facts.people.get(notice.person)
        cert = certs.get((notice.person, notice.task))
        status = status_at(cert, at, zone) if cert is not None else None
        rows.append(
            {
                "person": notice.person,
                "name": person.name if person is not None else "",
                "task": notice.task,
                "kind": notice.kind.value,
                "days": notice.days,
                "recert_due": _day(notice.due),
                "certified_on": _day(notice.certified_on),
                "last_activity": _day(notice.last_activity),
                "supervisor": notice.supervisor,
                "status": status.value if status is not None else "",
            }
        )
    return rows


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""


def announce_notices(tx: Tx, config: Config, now: datetime | None = None) -> list[Notice]:
    """A writer job: each notice due at ``now`` (default the transaction's time) becomes a
    ``certification`` event, published after the commit as every event is; writes nothing.
    The notices announced."""
    found = notices_now(tx.conn, now or tx.now, config)
    for notice in found:
        tx.event("certification", "-", notice.event())
    return found
