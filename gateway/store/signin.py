"""Checking a person's password, for sign-in and for electronic signatures, with lockout.

The argon2 check runs outside any transaction (it takes tens of milliseconds of CPU and must
not hold the store's write lock); the attempt is then recorded in a short transaction of its
own, so a failure counts even when the caller's action is refused. After
``[people] login_attempts`` failures in a row the account is locked for ``lockout_minutes``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from gateway.people.passwords import hash_password, needs_rehash, verify_password
from gateway.store.tables import users
from gateway.store.writer import Tx, run_in_transaction


class SignIn(enum.StrEnum):
    """How a password check ended (catalogue ``signin.<code>``)."""

    OK = "ok"
    #: a wrong password, or a person nobody knows (the screens say the same for both)
    WRONG = "wrong"
    LOCKED = "locked"
    DISABLED = "disabled"
    #: the person was imported but has no password yet (an admin sets one)
    NO_PASSWORD = "no_password"


@dataclass(frozen=True, slots=True)
class Policy:
    attempts: int = 5
    lockout: timedelta = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class Attempt:
    outcome: SignIn
    person: str
    locked_until: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is SignIn.OK


def authenticate(
    engine: Engine,
    person: str,
    password: str,
    *,
    now: datetime,
    policy: Policy,
    purpose: str = "sign_in",
) -> Attempt:
    """Check ``person``'s ``password``; record the attempt (audited as ``user.<purpose>``)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(users.c.password_hash, users.c.active, users.c.locked_until).where(
                users.c.person == person
            )
        ).first()
    if row is None:
        verify_password(None, password)  # the same work as for a known person
        return Attempt(SignIn.WRONG, person)
    if row.locked_until is not None and row.locked_until > now:
        return Attempt(SignIn.LOCKED, person, row.locked_until)
    if not row.active:
        return Attempt(SignIn.DISABLED, person)
    if row.password_hash is None:
        return Attempt(SignIn.NO_PASSWORD, person)
    good = verify_password(row.password_hash, password)
    rehash = hash_password(password) if good and needs_rehash(row.password_hash) else None

    def record(tx: Tx) -> Attempt:
        if good:
            values: dict[str, object] = {"failed_logins": 0, "locked_until": None}
            if rehash is not None:
                values["password_hash"] = rehash
            tx.conn.execute(update(users).where(users.c.person == person).values(**values))
            tx.audit(actor=person, action=f"user.{purpose}", entity="user", entity_id=person)
            return Attempt(SignIn.OK, person)
        failed = int(
            tx.conn.execute(
                update(users)
                .where(users.c.person == person)
                .values(failed_logins=users.c.failed_logins + 1)
                .returning(users.c.failed_logins)
            ).scalar_one()
        )
        if failed >= policy.attempts:
            until = tx.now + policy.lockout
            tx.conn.execute(
                update(users)
                .where(users.c.person == person)
                .values(failed_logins=0, locked_until=until)
            )
            tx.audit(
                actor=person,
                action="user.locked",
                entity="user",
                entity_id=person,
                reason=f"{failed} wrong passwords in a row ({purpose})",
            )
            return Attempt(SignIn.LOCKED, person, until)
        tx.audit(
            actor=person,
            action=f"user.{purpose}_failed",
            entity="user",
            entity_id=person,
            reason=f"wrong password ({failed} of {policy.attempts})",
        )
        return Attempt(SignIn.WRONG, person)

    return run_in_transaction(engine, record, now)


def set_password(tx: Tx, person: str, password: str, *, actor: str) -> bool:
    """Set ``person``'s password (hashed) and unlock them; False when there is no such person.

    The caller checks ``passwords.password_problem`` first, and hashes outside hot paths.
    """
    return set_password_hash(tx, person, hash_password(password), actor=actor)


def set_password_hash(tx: Tx, person: str, password_hash: str, *, actor: str) -> bool:
    """``set_password`` with the argon2 hash made beforehand (outside the writer: the demo
    gives its people one password, hashed once)."""
    changed = tx.conn.execute(
        update(users)
        .where(users.c.person == person)
        .values(
            password_hash=password_hash,
            password_changed_at=tx.now,
            failed_logins=0,
            locked_until=None,
            updated_at=tx.now,
            updated_by=actor,
        )
    ).rowcount
    if changed:
        tx.audit(actor=actor, action="user.password_set", entity="user", entity_id=person)
    return bool(changed)
