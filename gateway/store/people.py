"""The store's side of people: users and roles, operator IDs, certifications; the rule facts.

Every function that changes what rules read (a person's roles or activity, an operator ID, a
certification) bumps the facts version in the same transaction (``gateway.store.facts``), so
the pipeline sees the change with its next batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, select, type_coerce, update

from gateway.people.certification import Certification, CertStatus
from gateway.people.certification import CertificationRecord as CertificationRecord
from gateway.people.operators import OperatorId as OperatorId
from gateway.people.operators import parse_operator_id as parse_operator_id
from gateway.people.roles import Role, format_roles, parse_roles
from gateway.people.tasks import parse_task
from gateway.rules.facts import Facts, Person
from gateway.store import facts as store_facts
from gateway.store.tables import TZ, certifications, operator_ids, results, users
from gateway.store.writer import Tx

# --- reading ---------------------------------------------------------------------------------


def load_people(conn: Connection) -> Facts:
    """Every people fact rules read, in three queries (run once per change, not per message)."""
    people = {
        row.person: Person(row.person, row.name, parse_roles(row.roles), bool(row.active))
        for row in conn.execute(select(users.c.person, users.c.name, users.c.roles, users.c.active))
    }
    operators = {
        (row.instrument_id, row.operator_id): row.person
        for row in conn.execute(
            select(operator_ids.c.instrument_id, operator_ids.c.operator_id, operator_ids.c.person)
        )
    }
    by_person: dict[str, list[Certification]] = {}
    for row in conn.execute(
        select(
            certifications.c.person,
            certifications.c.task,
            certifications.c.status,
            certifications.c.certified_on,
            certifications.c.recert_due,
            certifications.c.supervisor,
        )
    ):
        by_person.setdefault(row.person, []).append(
            Certification(
                person=row.person,
                task=parse_task(row.task),
                status=CertStatus(row.status),
                certified_on=row.certified_on,
                recert_due=row.recert_due,
                supervisor=row.supervisor,
            )
        )
    return Facts(
        operators=operators,
        certifications={person: tuple(certs) for person, certs in by_person.items()},
        people=people,
    )


def get_user(conn: Connection, person: str) -> dict[str, object] | None:
    """One user's row as a dict (with the password hash: for sign-in only), or None."""
    row = conn.execute(select(users).where(users.c.person == person)).mappings().first()
    return dict(row) if row is not None else None


def list_people(conn: Connection) -> list[dict[str, object]]:
    """Every person with roles, operator IDs and certifications (no password hashes)."""
    ids: dict[str, list[str]] = {}
    for row in conn.execute(select(operator_ids).order_by(operator_ids.c.id)):
        ids.setdefault(row.person, []).append(str(OperatorId(row.operator_id, row.instrument_id)))
    certs: dict[str, list[dict[str, object]]] = {}
    for row in conn.execute(select(certifications).order_by(certifications.c.task)):
        certs.setdefault(row.person, []).append(
            {
                "task": row.task,
                "status": row.status,
                "certified_on": row.certified_on.isoformat() if row.certified_on else "",
                "recert_due": row.recert_due.isoformat() if row.recert_due else "",
                "supervisor": row.supervisor,
                "evidence": row.evidence,
            }
        )
    return [
        {
            "person": row.person,
            "name": row.name,
            "roles": [r for r in row.roles.split(";") if r],
            "active": bool(row.active),
            "can_sign_in": row.password_hash is not None,
            "operator_ids": ids.get(row.person, []),
            "certifications": certs.get(row.person, []),
        }
        for row in conn.execute(select(users).order_by(users.c.person))
    ]


def last_activity(
    conn: Connection, since: datetime | None = None
) -> list[tuple[str, str, str, datetime]]:
    """(person, instrument, test code, last time) of every person's results, in one grouped
    query: the time is when the analysis was performed, else when the result arrived.
    ``since``: only results from then on (older work cannot change an inactivity warning)."""
    when = func.coalesce(results.c.performed_at, results.c.created_at)
    last = type_coerce(func.max(when), TZ).label("last")
    query = (
        select(results.c.performed_by, results.c.instrument_id, results.c.test_code, last)
        .where(results.c.performed_by != "")
        .group_by(results.c.performed_by, results.c.instrument_id, results.c.test_code)
    )
    if since is not None:
        query = query.where(when >= since)
    return [
        (row.performed_by, row.instrument_id, row.test_code, row.last)
        for row in conn.execute(query)
    ]


# --- changing --------------------------------------------------------------------------------


def upsert_person(tx: Tx, person: str, *, name: str, roles: Iterable[Role], actor: str) -> bool:
    """Create or update a person's name and roles; True when something changed."""
    stored = format_roles(roles)
    row = tx.conn.execute(
        select(users.c.name, users.c.roles).where(users.c.person == person)
    ).first()
    if row is None:
        tx.conn.execute(
            insert(users).values(
                person=person,
                name=name,
                roles=stored,
                active=True,
                failed_logins=0,
                created_at=tx.now,
                updated_at=tx.now,
                updated_by=actor,
            )
        )
        tx.audit(
            actor=actor,
            action="person.created",
            entity="person",
            entity_id=person,
            after={"name": name, "roles": stored},
        )
    elif (row.name, row.roles) != (name, stored):
        tx.conn.execute(
            update(users)
            .where(users.c.person == person)
            .values(name=name, roles=stored, updated_at=tx.now, updated_by=actor)
        )
        tx.audit(
            actor=actor,
            action="person.updated",
            entity="person",
            entity_id=person,
            before={"name": row.name, "roles": row.roles},
            after={"name": name, "roles": stored},
        )
    else:
        return False
    store_facts.bump(tx)
    return True


def set_operator_ids(tx: Tx, person: str, wanted: Sequence[OperatorId], *, actor: str) -> bool:
    """Make ``person``'s operator IDs exactly ``wanted``; True when something changed.

    An ID another person holds on the same instrument scope is a ValueError naming both.
    """
    rows = tx.conn.execute(
        select(operator_ids.c.id, operator_ids.c.operator_id, operator_ids.c.instrument_id).where(
            operator_ids.c.person == person
        )
    ).all()
    have = {OperatorId(r.operator_id, r.instrument_id): r.id for r in rows}
    if set(have) == set(wanted):
        return False
    for op_id in wanted:
        if op_id in have:
            continue
        other = tx.conn.execute(
            select(operator_ids.c.person).where(
                operator_ids.c.operator_id == op_id.operator_id,
                operator_ids.c.instrument_id == op_id.instrument_id,
            )
        ).scalar()
        if other is not None and other != person:
            raise ValueError(f"operator ID {op_id} already belongs to {other}")
    gone = [row_id for op_id, row_id in have.items() if op_id not in wanted]
    if gone:
        tx.conn.execute(delete(operator_ids).where(operator_ids.c.id.in_(gone)))
    new = [op_id for op_id in wanted if op_id not in have]
    if new:
        tx.conn.execute(
            insert(operator_ids),
            [
                {"person": person, "operator_id": o.operator_id, "instrument_id": o.instrument_id}
                for o in new
            ],
        )
    tx.audit(
        actor=actor,
        action="person.operator_ids",
        entity="person",
        entity_id=person,
        before={"operator_ids": sorted(str(o) for o in have)},
        after={"operator_ids": sorted(str(o) for o in wanted)},
    )
    store_facts.bump(tx)
    return True


def upsert_certification(tx: Tx, record: CertificationRecord, *, actor: str) -> bool:
    """Create or update one certification; True when something changed (audited, bumped)."""
    values = {
        "status": record.status.value,
        "certified_on": record.certified_on,
        "recert_due": record.recert_due,
        "supervisor": record.supervisor,
        "evidence": record.evidence,
    }
    row = (
        tx.conn.execute(
            select(certifications).where(
                certifications.c.person == record.person, certifications.c.task == record.task
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        tx.conn.execute(
            insert(certifications).values(
                person=record.person,
                task=record.task,
                updated_at=tx.now,
                updated_by=actor,
                **values,
            )
        )
        before: dict[str, object] = {}
    else:
        before = {k: row[k] for k in values}
        if before == values:
            return False
        tx.conn.execute(
            update(certifications)
            .where(certifications.c.id == row["id"])
            .values(updated_at=tx.now, updated_by=actor, **values)
        )
    tx.audit(
        actor=actor,
        action="certification.set",
        entity="certification",
        entity_id=f"{record.person}/{record.task}",
        before={k: str(v) if v is not None else "" for k, v in before.items()},
        after={k: str(v) if v is not None else "" for k, v in values.items()},
    )
    store_facts.bump(tx)
    return True


def set_active(tx: Tx, person: str, active: bool, *, actor: str) -> bool:
    """Enable or disable a person (a disabled person cannot sign in, and is no performer)."""
    changed = tx.conn.execute(
        update(users)
        .where(users.c.person == person, users.c.active.is_(not active))
        .values(active=active, updated_at=tx.now, updated_by=actor)
    ).rowcount
    if not changed:
        return False
    tx.audit(
        actor=actor,
        action="person.enabled" if active else "person.disabled",
        entity="person",
        entity_id=person,
    )
    store_facts.bump(tx)
    return True
