"""The demo's people (config/demo-people.csv) fit the demo's config, and on any day the demo
runs they show the same things: Kari's Afinion certification expired, Bente's Sysmex
recertification three weeks away, Morten's new urine-strip certification unused."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from gateway.config import load_config
from gateway.demo.options import DEMO_CONFIG, DEMO_PEOPLE
from gateway.demo.people import AS_OF, one_time_password, people_in, shifted
from gateway.people.certification import Certification, CertStatus, status_at
from gateway.people.competence import Vocabulary, parse_competence
from gateway.people.passwords import password_problem
from gateway.people.reminders import NoticeRules, notices
from gateway.people.roles import Role
from gateway.people.tasks import parse_task

OSLO = ZoneInfo("Europe/Oslo")


def test_the_demo_people_fit_the_demo_config() -> None:
    config = load_config(DEMO_CONFIG)
    assert config.people.enforce is True
    parsed = parse_competence(DEMO_PEOPLE.read_bytes(), vocabulary=Vocabulary.from_config(config))
    assert parsed.ok and parsed.warnings == ()
    roles = {p.person: p.roles for p in parsed.people}
    assert roles["eva"] == {Role.ADMIN} and roles["hilde"] == {Role.QUALITY_MANAGER}
    assert sum(Role.VERIFIER in r for r in roles.values()) == 2
    assert Role.SUPERVISOR in roles["siri"]
    # the analysers' operator IDs (sim_operators) all belong to someone
    ids = {str(o) for p in parsed.people for o in p.operator_ids}
    for inst in config.instruments:
        assert set(str(inst.options["sim_operators"]).split(",")) <= ids, inst.id


@pytest.mark.parametrize("today", [AS_OF, date(2027, 7, 1), date(2031, 2, 28)])
def test_every_run_sees_the_same_story(today: date) -> None:
    parsed = shifted(parse_competence(DEMO_PEOPLE.read_bytes()), today)
    at = datetime.combine(today, time(10), tzinfo=OSLO)
    certs = [
        Certification(
            r.person, parse_task(r.task), r.status, r.certified_on, r.recert_due, r.supervisor
        )
        for r in (c.record for c in parsed.certifications)
    ]
    status = {(c.person, str(c.task)): status_at(c, at, OSLO) for c in certs}
    assert status["kari", "afinion-1"] is CertStatus.EXPIRED
    assert status["kari", "clinitek-1"] is CertStatus.CERTIFIED
    assert status["tone", "clinitek-1"] is CertStatus.TRAINEE
    assert status["bente", "astm_afinion2"] is CertStatus.CERTIFIED
    found = notices(certs, [], at, zone=OSLO, rules=NoticeRules())
    assert [(n.person, n.task, n.kind.value, n.days) for n in found] == [
        ("kari", "afinion-1", "overdue", 384),
        ("bente", "sysmex-1", "reminder", 21),
        ("morten", "clinitek-1", "inactive", 45),
    ]


def test_the_one_time_password_passes_the_password_rules() -> None:
    people = people_in(DEMO_PEOPLE.read_bytes())
    assert len(people) == 7
    passwords = {one_time_password(people) for _ in range(20)}
    assert len(passwords) == 20
    assert all(password_problem(p, person) is None for p in passwords for person in people)
