"""Recertification reminders and inactivity warnings (DOMAIN rules 10-11): at the day
boundaries of Europe/Oslo, from a real store's certifications and results, and announced as
``certification`` events through the writer, as the running gateway does each day."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, event

from drivers.model import InboundMessage, Observation
from gateway.certification_watch import CertificationWatch, next_run
from gateway.config import Config, parse_config
from gateway.ingest import store_message
from gateway.people.certification import Certification, CertStatus
from gateway.people.competence import Vocabulary, parse_competence
from gateway.people.reminders import Activity, Notice, NoticeKind, NoticeRules, notices
from gateway.people.tasks import WorkItem, parse_task
from gateway.rule_context import current_context
from gateway.rules import context_from_config
from gateway.store.competence import apply_import
from gateway.store.people import last_activity
from gateway.store.reminders import due_list, notices_now
from gateway.store.writer import Event, GroupCommitWriter, run_in_transaction

OSLO = ZoneInfo("Europe/Oslo")
RULES = NoticeRules(reminder_days=30, inactivity_days=30, new_certification_days=180)
AFINION = WorkItem("afinion-1", "astm_afinion2", "HbA1c")


def oslo(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=OSLO)


def cert(
    task: str = "afinion-1",
    status: CertStatus = CertStatus.CERTIFIED,
    certified_on: date | None = date(2025, 1, 1),
    recert_due: date | None = None,
    person: str = "kari",
) -> Certification:
    return Certification(person, parse_task(task), status, certified_on, recert_due, "bente")


def kinds(found: list[Notice]) -> list[tuple[str, str, int]]:
    return [(n.person, n.kind.value, n.days) for n in found]


# --- pure: reminders and overdue ---------------------------------------------------------


def test_a_reminder_starts_reminder_days_before_the_due_date_at_oslo_midnight() -> None:
    due = cert(recert_due=date(2026, 12, 31))
    # 23:59 in Oslo on 30 November is 31 days before; a minute later it is 30
    assert notices([due], [], oslo(2026, 11, 30, 23, 59), zone=OSLO, rules=RULES) == []
    found = notices([due], [], oslo(2026, 12, 1, 0, 0), zone=OSLO, rules=RULES)
    assert kinds(found) == [("kari", "reminder", 30)]
    # the same instant in UTC is still 30 November there: Oslo's calendar counts
    assert oslo(2026, 12, 1).astimezone(UTC).day == 30


def test_due_today_is_a_reminder_and_overdue_from_the_next_oslo_midnight() -> None:
    due = cert(recert_due=date(2026, 12, 31))
    last_minute = datetime(2026, 12, 31, 22, 59, tzinfo=UTC)  # 23:59 in Oslo
    assert kinds(notices([due], [], last_minute, zone=OSLO, rules=RULES)) == [
        ("kari", "reminder", 0)
    ]
    midnight = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)  # 00:00 on 1 January in Oslo
    (overdue,) = notices([due], [], midnight, zone=OSLO, rules=RULES)
    assert (overdue.kind, overdue.days, overdue.due) == (NoticeKind.OVERDUE, 1, date(2026, 12, 31))
    assert overdue.event() == {
        "person": "kari",
        "task": "afinion-1",
        "notice": "overdue",
        "due": "2026-12-31",
        "days": 1,
    }


def test_recorded_expired_suspended_and_trainee_certifications_get_no_due_notice() -> None:
    now = oslo(2026, 12, 20)
    certs = [
        cert(status=CertStatus.EXPIRED, recert_due=date(2026, 12, 1), person="a"),
        cert(status=CertStatus.SUSPENDED, recert_due=date(2026, 12, 25), person="b"),
        cert(status=CertStatus.TRAINEE, recert_due=date(2026, 12, 25), person="c"),
        cert(recert_due=date(2027, 6, 1), person="d"),  # far off
        cert(recert_due=None, person="e"),
    ]
    assert notices(certs, [], now, zone=OSLO, rules=RULES) == []


# --- pure: inactivity --------------------------------------------------------------------


def test_a_new_certification_without_work_warns_after_inactivity_days() -> None:
    new = cert(certified_on=date(2026, 11, 1))
    assert notices([new], [], oslo(2026, 11, 30, 23, 59), zone=OSLO, rules=RULES) == []
    (warning,) = notices([new], [], oslo(2026, 12, 1), zone=OSLO, rules=RULES)
    assert (warning.kind, warning.days, warning.last_activity) == (NoticeKind.INACTIVE, 30, None)
    off = NoticeRules(reminder_days=30, inactivity_days=0, new_certification_days=180)
    assert notices([new], [], oslo(2027, 1, 1), zone=OSLO, rules=off) == []


def test_the_last_work_counts_by_its_oslo_date() -> None:
    new = cert(certified_on=date(2026, 11, 1))
    # 23:30 UTC on 20 November is 00:30 on 21 November in Oslo
    work = [Activity("kari", AFINION, datetime(2026, 11, 20, 23, 30, tzinfo=UTC))]
    assert notices([new], work, oslo(2026, 12, 20, 23, 59), zone=OSLO, rules=RULES) == []
    (warning,) = notices([new], work, oslo(2026, 12, 21), zone=OSLO, rules=RULES)
    assert (warning.days, warning.last_activity) == (30, date(2026, 11, 21))


def test_only_work_the_task_covers_counts_and_others_work_does_not() -> None:
    now = oslo(2026, 12, 21)
    recent = datetime(2026, 12, 15, 10, tzinfo=UTC)
    by_model = cert(task="astm_afinion2", certified_on=date(2026, 11, 1))
    by_group = cert(task="afinion-1:lipids", certified_on=date(2026, 11, 1), person="ola")
    work = [
        Activity("kari", WorkItem("sysmex-1", "astm_sysmex_xn", "WBC"), recent),  # another model
        Activity("ola", AFINION, recent),  # HbA1c is not a lipid
        Activity("bente", AFINION, recent),  # someone else
    ]
    found = notices([by_model, by_group], work, now, zone=OSLO, rules=RULES)
    assert kinds(found) == [("kari", "inactive", 50), ("ola", "inactive", 50)]
    work += [
        Activity("kari", WorkItem("afinion-2", "astm_afinion2", "CRP"), recent),  # same model
        Activity("ola", WorkItem("afinion-1", "astm_afinion2", "Chol", group="lipids"), recent),
    ]
    assert notices([by_model, by_group], work, now, zone=OSLO, rules=RULES) == []


def test_only_new_certified_certifications_are_watched_for_inactivity() -> None:
    now = oslo(2026, 12, 21)
    old = cert(certified_on=date(2026, 6, 1), person="a")  # 203 days: no longer new
    future = cert(certified_on=date(2026, 12, 25), person="b")  # not yet valid
    trainee = cert(status=CertStatus.TRAINEE, certified_on=date(2026, 11, 1), person="c")
    assert notices([old, future, trainee], [], now, zone=OSLO, rules=RULES) == []
    edge = cert(certified_on=now.date() - timedelta(days=179), person="d")
    assert kinds(notices([edge], [], now, zone=OSLO, rules=RULES)) == [("d", "inactive", 179)]


def test_the_daily_run_is_just_after_oslo_midnight_also_across_summer_time() -> None:
    assert next_run(oslo(2026, 12, 7, 0, 0), OSLO) == oslo(2026, 12, 7, 0, 1)
    assert next_run(oslo(2026, 12, 7, 0, 1), OSLO) == oslo(2026, 12, 8, 0, 1)
    assert next_run(datetime(2026, 12, 7, 23, 30, tzinfo=UTC), OSLO) == oslo(2026, 12, 9, 0, 1)
    # the night summer time starts: 00:01 is still +01:00, the next day's is +02:00
    spring = next_run(oslo(2027, 3, 28, 12, 0), OSLO)
    assert spring == oslo(2027, 3, 29, 0, 1) and spring.utcoffset() == timedelta(hours=2)


# --- the store ---------------------------------------------------------------------------

HEADER = "person,name,operator_ids,roles,task,status,certified_on,recert_due,supervisor,evidence"
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def site(store_url: str) -> Config:
    return parse_config(
        {
            "site": {"name": "reminders"},
            "store": {"url": store_url},
            "instruments": [
                {"id": "afinion-1", "driver": "astm_afinion2", "url": "tcp-listen://127.0.0.1:1"},
                {"id": "sysmex-1", "driver": "astm_sysmex_xn", "url": "tcp-listen://127.0.0.1:2"},
            ],
            "tests": [{"code": "HbA1c"}, {"code": "WBC", "group": "blood"}],
        }
    )


@pytest.fixture
def config(engine: Engine, store_url: str) -> Config:
    config = site(store_url)
    text = (
        f"{HEADER}\n"
        # due in 10 days: a reminder
        "bente,Bente Hansen,BH,operator;verifier,astm_afinion2,certified,2025-01-01,2026-12-17,,\n"
        # due passed yesterday: overdue
        "bente,Bente Hansen,BH,operator;verifier,sysmex-1:blood,certified,2025-01-01,2026-12-06,,\n"
        # certified 40 days ago, has worked on the Afinion (not on the Sysmex)
        "kari,Kari Nordmann,KN,operator,afinion-1,certified,2026-10-28,2027-10-28,,\n"
        "kari,Kari Nordmann,KN,operator,sysmex-1,certified,2026-10-28,2027-10-28,,\n"
    )
    parsed = parse_competence(text, vocabulary=Vocabulary.from_config(config))
    assert parsed.ok, parsed.problems
    run_in_transaction(engine, lambda tx: apply_import(tx, parsed, actor="setup"), NOW)
    context = context_from_config(config)
    for n, (operator, instrument, code, when) in enumerate(
        [
            ("KN", "afinion-1", "HbA1c", datetime(2026, 11, 2, 9, tzinfo=UTC)),
            ("KN", "afinion-1", "HbA1c", datetime(2026, 12, 1, 9, tzinfo=UTC)),
            ("KN", "afinion-1", "HbA1c", datetime(2026, 11, 15, 9, tzinfo=UTC)),
            ("BH", "sysmex-1", "WBC", datetime(2026, 12, 5, 9, tzinfo=UTC)),
            ("XX", "sysmex-1", "WBC", datetime(2026, 12, 5, 9, tzinfo=UTC)),  # nobody known
        ]
    ):
        observation = Observation(
            instrument, code, "5", performed_at=when, operator_id=operator, specimen_id=f"S{n}"
        )
        message = InboundMessage(
            instrument, "astm", f"raw-{n}".encode(), when, observations=(observation,)
        )
        run_in_transaction(
            engine, lambda tx, m=message: store_message(tx, m, current_context(tx, context)), NOW
        )
    return config


@pytest.fixture
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        if str(args[2]).lstrip().upper().startswith("SELECT"):  # not SQLite's BEGIN
            seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    yield seen
    event.remove(engine, "before_cursor_execute", count)


def test_last_activity_is_one_grouped_query(
    engine: Engine, config: Config, statements: list[str]
) -> None:
    with engine.connect() as conn:
        statements.clear()
        found = last_activity(conn)
        assert len(statements) == 1 and "GROUP BY" in statements[0]
        recent = last_activity(conn, since=datetime(2026, 11, 20, tzinfo=UTC))
    assert sorted(found) == [
        ("bente", "sysmex-1", "WBC", datetime(2026, 12, 5, 9, tzinfo=UTC)),
        ("kari", "afinion-1", "HbA1c", datetime(2026, 12, 1, 9, tzinfo=UTC)),
    ]
    assert sorted(recent) == sorted(found)
    with engine.connect() as conn:
        assert last_activity(conn, since=datetime(2026, 12, 6, tzinfo=UTC)) == []


def test_notices_and_the_due_list_from_the_store(engine: Engine, config: Config) -> None:
    with engine.connect() as conn:
        found = notices_now(conn, NOW, config)
        rows = due_list(conn, date(2026, 12, 7), config)
    assert [(n.person, n.task, n.kind.value, n.days) for n in found] == [
        ("bente", "sysmex-1:blood", "overdue", 1),
        ("bente", "astm_afinion2", "reminder", 10),
        ("kari", "sysmex-1", "inactive", 40),
    ]
    assert rows[0] == {
        "person": "bente",
        "name": "Bente Hansen",
        "task": "sysmex-1:blood",
        "kind": "overdue",
        "days": 1,
        "recert_due": "2026-12-06",
        "certified_on": "2025-01-01",
        "last_activity": "",
        "supervisor": "",
        "status": "expired",
    }
    assert [(r["person"], r["kind"], r["status"]) for r in rows[1:]] == [
        ("bente", "reminder", "certified"),
        ("kari", "inactive", "certified"),
    ]


async def test_the_watch_announces_the_notices_as_certification_events(
    engine: Engine, config: Config
) -> None:
    events: list[Event] = []
    writer = GroupCommitWriter(engine, on_events=events.extend)
    writer.start()
    try:
        watch = CertificationWatch(writer, config, clock=lambda: NOW)
        assert await watch.announce_once() == 3
    finally:
        writer.stop()
    kinds_seen = [(kind, instrument, p["person"], p["notice"]) for kind, instrument, p in events]
    assert sorted(kinds_seen) == [
        ("certification", "-", "bente", "overdue"),
        ("certification", "-", "bente", "reminder"),
        ("certification", "-", "kari", "inactive"),
    ]
    # staff data only: nothing about a patient or a result
    assert all(set(p) == {"person", "task", "notice", "due", "days"} for _, _, p in events)
    assert watch.announced == 3
