"""Recertification (DOMAIN rule 10): the operator reviews the task's procedures and signs.

``confirmed``: a ``recertifications`` row, and the certification's due date moves on by
``[people] recert_interval_days`` from the later of its due date and today (recertifying early
keeps the schedule, recertifying late starts it again today); an expired certification is
certified again. ``unclear`` ("something is lacking"): the row, the certification left as it
is, and a deviation routed to the quality manager (Kvalitetsansvarlig) naming the
certification's supervisor, the nearest manager, who follows up and documents the re-training;
with an MQTT ``certification`` event. Both are audited and bump the rule facts' version.

A trainee is certified by their supervisor, not recertified, and a suspension is lifted by the
competence records (an import): both are refused, as is an unknown certification.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select

from gateway.catalogue import FALLBACK_LANGUAGE, text
from gateway.deviations import record as record_deviation
from gateway.model import Deviation
from gateway.people.certification import CertificationRecord, CertStatus
from gateway.people.tasks import parse_task
from gateway.store import facts as store_facts
from gateway.store.people import upsert_certification
from gateway.store.tables import certifications, recertifications
from gateway.store.writer import Tx

OSLO = ZoneInfo("Europe/Oslo")
QUALITY_MANAGER = "Kvalitetsansvarlig"
#: the deviation's kind, and the ``certification`` event's for an unclear recertification
UNCLEAR_KIND = "recertification_unclear"


class Outcome(enum.StrEnum):
    CONFIRMED = "confirmed"
    UNCLEAR = "unclear"


class RecertifyRefused(ValueError):
    """Why a recertification cannot be recorded: ``code`` (catalogue
    ``recertify.refused.<code>``) with the person and the task."""

    def __init__(self, code: str, person: str, task: str) -> None:
        self.code, self.person, self.task = code, person, task
        super().__init__(text(FALLBACK_LANGUAGE, self.key, person=person, task=task))

    @property
    def key(self) -> str:
        return f"recertify.refused.{self.code}"


@dataclass(frozen=True, slots=True)
class Recertified:
    """What a recertification recorded."""

    person: str
    task: str
    outcome: Outcome
    recertification_id: int
    status_before: CertStatus
    status: CertStatus
    due_before: date | None
    due: date | None
    supervisor: str = ""
    #: the deviation an unclear recertification raised
    deviation_id: int | None = None


def recertify(
    tx: Tx,
    person: str,
    task: str,
    outcome: Outcome | str,
    note: str = "",
    *,
    actor: str | None = None,
    interval_days: int = 365,
    zone: ZoneInfo = OSLO,
) -> Recertified:
    """Record ``person``'s recertification for ``task`` (module docstring); ``actor`` (who
    records it; default the person, who signs) goes into the audit row."""
    outcome = Outcome(outcome)
    try:
        task = str(parse_task(task))
    except ValueError:
        raise RecertifyRefused("no_certification", person, task) from None
    note = note.strip()
    if outcome is Outcome.UNCLEAR and not note:
        raise RecertifyRefused("note_required", person, task)
    current = _certification(tx, person, task)
    if current is None:
        raise RecertifyRefused("no_certification", person, task)
    if current.status is CertStatus.TRAINEE:
        raise RecertifyRefused("trainee", person, task)
    if current.status is CertStatus.SUSPENDED:
        raise RecertifyRefused("suspended", person, task)
    who = actor or person
    row_id = int(
        tx.conn.execute(
            insert(recertifications).returning(recertifications.c.id),
            {
                "person": person,
                "task": task,
                "signed_at": tx.now,
                "outcome": outcome.value,
                "note": note,
            },
        ).scalar_one()
    )
    if outcome is Outcome.CONFIRMED:
        return _confirmed(tx, current, row_id, note, who, interval_days, zone)
    return _unclear(tx, current, row_id, note, who)


def _certification(tx: Tx, person: str, task: str) -> CertificationRecord | None:
    row = tx.conn.execute(
        select(certifications).where(
            certifications.c.person == person, certifications.c.task == task
        )
    ).first()
    if row is None:
        return None
    return CertificationRecord(
        person=row.person,
        task=row.task,
        status=CertStatus(row.status),
        certified_on=row.certified_on,
        recert_due=row.recert_due,
        supervisor=row.supervisor,
        evidence=row.evidence,
    )


def next_due(due: date | None, today: date, interval_days: int) -> date:
    """The due date after a confirmed recertification on ``today``."""
    return max(due or today, today) + timedelta(days=interval_days)


def _confirmed(
    tx: Tx,
    current: CertificationRecord,
    row_id: int,
    note: str,
    actor: str,
    interval_days: int,
    zone: ZoneInfo,
) -> Recertified:
    today = tx.now.astimezone(zone).date()
    due = next_due(current.recert_due, today, interval_days)
    upsert_certification(
        tx, replace(current, status=CertStatus.CERTIFIED, recert_due=due), actor=actor
    )
    tx.audit(
        actor=actor,
        action="certification.recertified",
        entity="certification",
        entity_id=f"{current.person}/{current.task}",
        reason=note,
        before={"status": current.status.value, "recert_due": _day(current.recert_due)},
        after={"status": CertStatus.CERTIFIED.value, "recert_due": due.isoformat()},
    )
    store_facts.bump(tx)
    tx.event(
        "certification",
        "-",
        {
            "person": current.person,
            "task": current.task,
            "notice": "recertified",
            "due": due.isoformat(),
        },
    )
    return Recertified(
        person=current.person,
        task=current.task,
        outcome=Outcome.CONFIRMED,
        recertification_id=row_id,
        status_before=current.status,
        status=CertStatus.CERTIFIED,
        due_before=current.recert_due,
        due=due,
        supervisor=current.supervisor,
    )


def _unclear(
    tx: Tx, current: CertificationRecord, row_id: int, note: str, actor: str
) -> Recertified:
    supervisor = current.supervisor or "–"
    deviation_id = record_deviation(
        tx,
        Deviation(
            kind=UNCLEAR_KIND,
            summary=text(
                FALLBACK_LANGUAGE,
                "recertify.deviation",
                person=current.person,
                task=current.task,
                supervisor=supervisor,
            ),
            detail=note,
            responsible_function=QUALITY_MANAGER,
        ),
        actor=actor,
    )
    tx.audit(
        actor=actor,
        action="certification.recertification_unclear",
        entity="certification",
        entity_id=f"{current.person}/{current.task}",
        reason=note,
        after={"deviation": deviation_id, "supervisor": current.supervisor},
    )
    store_facts.bump(tx)
    tx.event(
        "certification",
        "-",
        {
            "person": current.person,
            "task": current.task,
            "notice": UNCLEAR_KIND,
            "supervisor": current.supervisor,
            "deviation": deviation_id,
            "due": _day(current.recert_due),
        },
    )
    return Recertified(
        person=current.person,
        task=current.task,
        outcome=Outcome.UNCLEAR,
        recertification_id=row_id,
        status_before=current.status,
        status=current.status,
        due_before=current.recert_due,
        due=current.recert_due,
        supervisor=current.supervisor,
        deviation_id=deviation_id,
    )


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""
