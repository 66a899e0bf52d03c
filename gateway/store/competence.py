"""Importing the competence records into the store: the plan (what would be created, changed or
left as it is, per person and per certification) and its application in one transaction.

The file is the competence portal's word on the people it names. Nothing is deleted: a person
in the store but not in the file, and a certification of a person in the file that the file
does not list, are reported as "not in the file" and kept as they are (disable a person with
``set_active``; end a certification by importing it as expired or suspended). The import
writes through ``gateway.store.people``, whose functions change nothing (no audit row, no facts
bump) when a value is already what the file says: importing the same file twice changes nothing
the second time.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from gateway.people.certification import (
    Certification,
    CertificationRecord,
    CertStatus,
    status_at,
)
from gateway.people.competence import CompetenceFile, PersonEntry, Problem
from gateway.people.operators import OperatorId
from gateway.people.roles import format_roles, parse_roles
from gateway.people.tasks import parse_task
from gateway.store.people import (
    list_people,
    set_operator_ids,
    upsert_certification,
    upsert_person,
)
from gateway.store.tables import certifications, operator_ids, users
from gateway.store.writer import Tx


class Change(enum.StrEnum):
    CREATED = "created"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One value that changes: the store's now (``before``) and the file's (``after``)."""

    field: str
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class PersonPlan:
    """What the import does to one person: their name, roles and operator IDs."""

    person: str
    name: str
    line: int
    change: Change
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True, slots=True)
class CertificationPlan:
    """What the import does to one certification (person and task)."""

    person: str
    task: str
    line: int
    change: Change
    fields: tuple[FieldChange, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """The whole import's effect; ``problems``: why the store cannot take the file as it is."""

    people: tuple[PersonPlan, ...] = ()
    certifications: tuple[CertificationPlan, ...] = ()
    #: in the store, not in the file: kept, not deleted
    people_not_in_file: tuple[str, ...] = ()
    #: (person, task) of people in the file whose certification the file does not list: kept
    certifications_not_in_file: tuple[tuple[str, str], ...] = ()
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def changes(self) -> int:
        """How many people and certifications the import creates or changes."""
        items: list[PersonPlan | CertificationPlan] = [*self.people, *self.certifications]
        return sum(item.change is not Change.UNCHANGED for item in items)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{"people": {"created": n, "changed": n, "unchanged": n, "not_in_file": n},
        "certifications": {...}}``."""
        out: dict[str, dict[str, int]] = {}
        groups: tuple[tuple[str, Iterable[PersonPlan | CertificationPlan], int], ...] = (
            ("people", self.people, len(self.people_not_in_file)),
            ("certifications", self.certifications, len(self.certifications_not_in_file)),
        )
        for name, items, missing in groups:
            counted = {change.value: 0 for change in Change}
            for item in items:
                counted[item.change.value] += 1
            out[name] = counted | {"not_in_file": missing}
        return out

    def as_dict(self) -> dict[str, object]:
        """The plan as plain data (the CLI's ``--json``, the import page)."""

        def fields(items: tuple[FieldChange, ...]) -> list[dict[str, str]]:
            return [{"field": f.field, "before": f.before, "after": f.after} for f in items]

        return {
            "counts": self.counts(),
            "people": [
                {
                    "person": p.person,
                    "name": p.name,
                    "line": p.line,
                    "change": p.change.value,
                    "fields": fields(p.fields),
                }
                for p in self.people
            ],
            "certifications": [
                {
                    "person": c.person,
                    "task": c.task,
                    "line": c.line,
                    "change": c.change.value,
                    "fields": fields(c.fields),
                }
                for c in self.certifications
            ],
            "people_not_in_file": list(self.people_not_in_file),
            "certifications_not_in_file": [
                {"person": p, "task": t} for p, t in self.certifications_not_in_file
            ],
        }


class ImportRefused(ValueError):
    """The file has problems (its own, or against the store): nothing was imported."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(f"{len(self.problems)} problem(s) in the competence file")


# --- reading the store ------------------------------------------------------------------------


@dataclass(slots=True)
class _Stored:
    people: dict[str, tuple[str, str]] = field(default_factory=dict)  # person -> (name, roles)
    ids: dict[str, set[OperatorId]] = field(default_factory=dict)
    certs: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)


_CERT_FIELDS = ("status", "certified_on", "recert_due", "supervisor", "evidence")


def _stored(conn: Connection) -> _Stored:
    stored = _Stored()
    for row in conn.execute(select(users.c.person, users.c.name, users.c.roles)):
        stored.people[row.person] = (row.name, row.roles)
    for row in conn.execute(
        select(operator_ids.c.person, operator_ids.c.operator_id, operator_ids.c.instrument_id)
    ):
        stored.ids.setdefault(row.person, set()).add(OperatorId(row.operator_id, row.instrument_id))
    for cert in conn.execute(
        select(
            certifications.c.person,
            certifications.c.task,
            *(certifications.c[name] for name in _CERT_FIELDS),
        )
    ).mappings():
        stored.certs[cert["person"], cert["task"]] = {k: cert[k] for k in _CERT_FIELDS}
    return stored


def person_ids(conn: Connection) -> frozenset[str]:
    """Every person ID the store knows (a file's supervisor may name one)."""
    return frozenset(conn.execute(select(users.c.person)).scalars())


def export_records(conn: Connection) -> tuple[list[PersonEntry], list[CertificationRecord]]:
    """The store's people and certifications as the competence file states them."""
    stored = _stored(conn)
    people = [
        PersonEntry(person, name, parse_roles(roles), tuple(sorted(stored.ids.get(person, ()))), 0)
        for person, (name, roles) in sorted(stored.people.items())
    ]
    certs = [
        CertificationRecord(
            person=person,
            task=task,
            status=CertStatus(str(values["status"])),
            certified_on=_as_date(values["certified_on"]),
            recert_due=_as_date(values["recert_due"]),
            supervisor=str(values["supervisor"] or ""),
            evidence=str(values["evidence"] or ""),
        )
        for (person, task), values in sorted(stored.certs.items())
    ]
    return people, certs


def _as_date(value: object) -> date | None:
    return value if isinstance(value, date) else None


# --- planning ---------------------------------------------------------------------------------


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _ids_text(ids: Iterable[OperatorId]) -> str:
    return ";".join(str(o) for o in sorted(ids))


def _cert_values(record: CertificationRecord) -> dict[str, object]:
    # the same values, in the same form, as ``upsert_certification`` compares
    return {
        "status": record.status.value,
        "certified_on": record.certified_on,
        "recert_due": record.recert_due,
        "supervisor": record.supervisor,
        "evidence": record.evidence,
    }


def plan_import(conn: Connection, parsed: CompetenceFile) -> ImportPlan:
    """What importing ``parsed`` (a file without problems) would do to the store now."""
    if not parsed.ok:
        return ImportPlan(problems=parsed.problems)
    stored = _stored(conn)
    people = tuple(_plan_person(entry, stored) for entry in parsed.people)
    certs = tuple(
        _plan_certification(entry.record, entry.line, stored.certs)
        for entry in parsed.certifications
    )
    in_file = {entry.person for entry in parsed.people}
    listed = {(c.record.person, c.record.task) for c in parsed.certifications}
    return ImportPlan(
        people=people,
        certifications=certs,
        people_not_in_file=tuple(sorted(set(stored.people) - in_file)),
        certifications_not_in_file=tuple(
            sorted(key for key in stored.certs if key[0] in in_file and key not in listed)
        ),
        problems=tuple(_held_elsewhere(parsed.people, stored)),
    )


def _plan_person(entry: PersonEntry, stored: _Stored) -> PersonPlan:
    roles = format_roles(entry.roles)
    ids = _ids_text(entry.operator_ids)
    now = stored.people.get(entry.person)
    if now is None:
        fields = tuple(
            FieldChange(name, "", value)
            for name, value in (("name", entry.name), ("roles", roles), ("operator_ids", ids))
            if value
        )
        return PersonPlan(entry.person, entry.name, entry.line, Change.CREATED, fields)
    had_ids = _ids_text(stored.ids.get(entry.person, ()))
    changed = tuple(
        FieldChange(name, before, after)
        for name, before, after in (
            ("name", now[0], entry.name),
            ("roles", now[1], roles),
            ("operator_ids", had_ids, ids),
        )
        if before != after
    )
    change = Change.CHANGED if changed else Change.UNCHANGED
    return PersonPlan(entry.person, entry.name, entry.line, change, changed)


def _plan_certification(
    record: CertificationRecord, line: int, stored: Mapping[tuple[str, str], Mapping[str, object]]
) -> CertificationPlan:
    wanted = _cert_values(record)
    now = stored.get((record.person, record.task))
    if now is None:
        fields = tuple(
            FieldChange(name, "", _text(value)) for name, value in wanted.items() if _text(value)
        )
        return CertificationPlan(record.person, record.task, line, Change.CREATED, fields)
    changed = tuple(
        FieldChange(name, _text(now[name]), _text(value))
        for name, value in wanted.items()
        if now[name] != value
    )
    change = Change.CHANGED if changed else Change.UNCHANGED
    return CertificationPlan(record.person, record.task, line, change, changed)


def _held_elsewhere(people: Iterable[PersonEntry], stored: _Stored) -> Iterable[Problem]:
    """An operator ID the file gives one person while another, not in the file, holds it."""
    entries = list(people)
    in_file = {entry.person for entry in entries}
    holder = {op_id: person for person, ids in stored.ids.items() for op_id in ids}
    for entry in entries:
        for op_id in entry.operator_ids:
            other = holder.get(op_id)
            if other is not None and other != entry.person and other not in in_file:
                yield Problem(
                    entry.line,
                    "operator_ids",
                    "operator_id_held",
                    str(op_id),
                    (("other", other),),
                )


# --- applying ---------------------------------------------------------------------------------


def apply_import(tx: Tx, parsed: CompetenceFile, *, actor: str, source: str = "") -> ImportPlan:
    """Import ``parsed`` in ``tx``; the plan it carried out. ``ImportRefused`` (nothing
    written) when the file or the store has problems; ``source`` (the file's name) goes into
    the audit row that sums the import up (written only when something changed)."""
    plan = plan_import(tx.conn, parsed)
    if not plan.ok:
        raise ImportRefused(plan.problems)
    for entry in parsed.people:
        upsert_person(tx, entry.person, name=entry.name, roles=entry.roles, actor=actor)
    _free_moving_ids(tx, parsed.people, actor)
    for entry in parsed.people:
        set_operator_ids(tx, entry.person, entry.operator_ids, actor=actor)
    for cert in parsed.certifications:
        upsert_certification(tx, cert.record, actor=actor)
    if plan.changes:
        counts = plan.counts()
        tx.audit(
            actor=actor,
            action="competence.imported",
            entity="competence",
            entity_id=source or "-",
            after={name: counts[name] for name in ("people", "certifications")},
        )
    return plan


def _free_moving_ids(tx: Tx, people: Iterable[PersonEntry], actor: str) -> None:
    """An operator ID moving from one person in the file to another is taken from the first
    before anyone is given theirs (two people may even swap IDs)."""
    entries = list(people)
    wanted = {op_id: entry.person for entry in entries for op_id in entry.operator_ids}
    have = _stored(tx.conn).ids
    for entry in entries:
        moving = {
            op_id
            for op_id in have.get(entry.person, ())
            if op_id not in entry.operator_ids and wanted.get(op_id, entry.person) != entry.person
        }
        if moving:
            keep = sorted(have[entry.person] - moving)
            set_operator_ids(tx, entry.person, keep, actor=actor)


# --- the roster -------------------------------------------------------------------------------


def roster(conn: Connection, at: datetime, zone: ZoneInfo) -> list[dict[str, object]]:
    """Every person as ``list_people`` gives them, each certification with its
    ``effective_status`` at ``at`` (``status_at``: a passed due date makes it expired from the
    next midnight in ``zone``; "" for one dated after ``at``)."""
    people = list_people(conn)
    for person in people:
        certs = person["certifications"]
        assert isinstance(certs, list)
        for cert in certs:
            effective = status_at(_certification(str(person["person"]), cert), at, zone)
            cert["effective_status"] = effective.value if effective is not None else ""
    return people


def _certification(person: str, cert: Mapping[str, object]) -> Certification:
    def day(value: object) -> date | None:
        return date.fromisoformat(str(value)) if value else None

    return Certification(
        person=person,
        task=parse_task(str(cert["task"])),
        status=CertStatus(str(cert["status"])),
        certified_on=day(cert["certified_on"]),
        recert_due=day(cert["recert_due"]),
        supervisor=str(cert["supervisor"]),
    )
