"""One person's record for the people pages: roles, operator IDs, certifications with their
status at a moment, the recertifications they signed, and their recent work per task.

Staff data only (no patient data): the person's own work is counted by instrument and test,
never shown as results.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from gateway.config import Config
from gateway.people.certification import Certification, CertStatus
from gateway.people.reminders import Activity, last_done
from gateway.people.tasks import WorkItem, parse_task, specificity
from gateway.store.competence import roster
from gateway.store.people import last_activity
from gateway.store.tables import recertifications

#: how far back the page counts a person's work
ACTIVITY_DAYS = 365
#: the newest recertifications shown
RECERTIFICATIONS_SHOWN = 50
#: a recertification is refused for these (``gateway.store.recertification``)
NOT_RECERTIFIABLE = frozenset({CertStatus.TRAINEE.value, CertStatus.SUSPENDED.value})


def _work_items(config: Config) -> tuple[Mapping[str, str], Mapping[tuple[str, str], str]]:
    drivers = {inst.id: inst.driver for inst in config.instruments}
    groups = {(test.instrument, test.code): test.group for test in config.tests if test.group}
    return drivers, groups


def _activity(conn: Connection, person: str, at: datetime, config: Config) -> list[Activity]:
    drivers, groups = _work_items(config)
    return [
        Activity(
            who,
            WorkItem(
                instrument_id=instrument,
                driver=drivers.get(instrument, ""),
                test_code=test,
                group=groups.get((instrument, test)) or groups.get(("", test), ""),
            ),
            last,
        )
        for who, instrument, test, last in last_activity(conn, at - timedelta(days=ACTIVITY_DAYS))
        if who == person
    ]


def person_record(
    conn: Connection,
    person: str,
    at: datetime,
    zone: ZoneInfo,
    config: Config,
    *,
    everyone: list[dict[str, object]] | None = None,
) -> dict[str, object] | None:
    """``person`` as ``competence.roster`` gives them at ``at`` (None: no such person), plus::

        certifications[i]["last_done"]: "YYYY-MM-DD" | "" (their last work the task covers)
        certifications[i]["may_recertify"]: bool (neither trainee nor suspended)
        "recertifications": [{"signed_at": datetime, "task", "outcome", "note"}] newest first
        "activity": [{"instrument", "test", "last": datetime, "tasks": [task, ...]}] newest
            first, over the last ``ACTIVITY_DAYS`` days (``tasks``: the certifications
            covering that work)

    ``everyone``: the roster at ``at`` when the caller has read it already.
    """
    people = roster(conn, at, zone) if everyone is None else everyone
    found = [p for p in people if p["person"] == person]
    if not found:
        return None
    record = dict(found[0])
    certs = record["certifications"]
    assert isinstance(certs, list)
    activity = _activity(conn, person, at, config)
    tasks = {str(cert["task"]): parse_task(str(cert["task"])) for cert in certs}
    for cert in certs:
        as_cert = Certification(
            person=person, task=tasks[str(cert["task"])], status=CertStatus(str(cert["status"]))
        )
        done = last_done(as_cert, activity, zone)
        cert["last_done"] = done.isoformat() if done else ""
        cert["may_recertify"] = str(cert["status"]) not in NOT_RECERTIFIABLE
    record["activity"] = [
        {
            "instrument": item.work.instrument_id,
            "test": item.work.test_code,
            "last": item.last,
            "tasks": sorted(
                text for text, task in tasks.items() if specificity(task, item.work) is not None
            ),
        }
        for item in sorted(activity, key=lambda a: a.last, reverse=True)
    ]
    record["recertifications"] = [
        {"signed_at": row.signed_at, "task": row.task, "outcome": row.outcome, "note": row.note}
        for row in conn.execute(
            select(recertifications)
            .where(recertifications.c.person == person)
            .order_by(recertifications.c.signed_at.desc(), recertifications.c.id.desc())
            .limit(RECERTIFICATIONS_SHOWN)
        )
    ]
    return record
