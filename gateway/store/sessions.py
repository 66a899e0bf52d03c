"""Web sessions (table ``web_sessions``): start at sign-in, slide on activity, end for a reason.

The cookie holds a random token (``secrets.token_urlsafe(32)``, a new one at every sign-in);
the store keeps only its sha256, so a copy of the database signs nobody in. Each session has
its own CSRF token. A session lasts ``[people] session_idle_minutes`` past the last request a
person made (``touch``) and never more than ``session_max_hours`` after it started:
``expires_at`` always holds the earlier of the two, so "was this session alive at moment t"
is one comparison (``had_active_session``, which the co-signature of a trainee's result
asks). A session that ran out is ended with ``ended_at`` = the moment it expired, not the
moment someone noticed, so that question stays exact after the fact.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Connection, and_, insert, or_, select, update

from gateway.people.roles import Role, parse_roles
from gateway.store.tables import users, web_sessions
from gateway.store.writer import Tx

#: a request within this long of the last recorded one does not write ``last_seen_at`` again:
#: a page and the clicks right after it cost one write, and the idle expiry is at most this
#: much early (never late)
TOUCH_EVERY: Final = timedelta(seconds=10)
CLIENT_CHARS: Final = 64


class EndReason(enum.StrEnum):
    """Why a session ended (``web_sessions.end_reason``)."""

    SIGNED_OUT = "signed_out"
    IDLE = "idle"
    MAX = "max"
    DISABLED = "disabled"
    #: a cookie presented at sign-in: ended, and a new token issued (session fixation)
    REPLACED = "replaced"
    #: too many wrong passwords for an electronic signature locked the account
    LOCKED = "locked"
    #: an administrator set a new password: sessions opened with the old one end
    NEW_PASSWORD = "new_password"


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: timedelta = timedelta(minutes=15)
    max_age: timedelta = timedelta(hours=12)

    @classmethod
    def of(cls, idle_minutes: int, max_hours: int) -> SessionPolicy:
        return cls(timedelta(minutes=idle_minutes), timedelta(hours=max_hours))


@dataclass(frozen=True, slots=True)
class Session:
    """An open session as a request sees it, with its person's current name, roles, activity."""

    id: int
    person: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    name: str
    roles: frozenset[Role]
    active: bool


@dataclass(frozen=True, slots=True)
class Started:
    """A new session and its token: the token goes into the cookie and nowhere else."""

    token: str
    session: Session


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _expiry(created_at: datetime, seen_at: datetime, policy: SessionPolicy) -> datetime:
    return min(seen_at + policy.idle, created_at + policy.max_age)


def start(tx: Tx, person: str, policy: SessionPolicy, *, client: str = "") -> Started:
    """A new session for ``person`` (signed in just now), with a new token and CSRF token."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = _expiry(tx.now, tx.now, policy)
    session_id = int(
        tx.conn.execute(
            insert(web_sessions)
            .values(
                token_hash=token_hash(token),
                person=person,
                csrf_token=csrf,
                created_at=tx.now,
                last_seen_at=tx.now,
                expires_at=expires,
                end_reason="",
                client=client[:CLIENT_CHARS],
            )
            .returning(web_sessions.c.id)
        ).scalar_one()
    )
    tx.audit(
        actor=person,
        action="session.started",
        entity="session",
        entity_id=session_id,
        after={"expires_at": expires.isoformat(), "client": client[:CLIENT_CHARS]},
    )
    user = tx.conn.execute(
        select(users.c.name, users.c.roles, users.c.active).where(users.c.person == person)
    ).one()
    return Started(
        token,
        Session(
            session_id,
            person,
            csrf,
            tx.now,
            tx.now,
            expires,
            user.name,
            parse_roles(user.roles),
            bool(user.active),
        ),
    )


def lookup(conn: Connection, token: str) -> Session | None:
    """The open (not ended) session whose cookie token is ``token``, or None."""
    row = conn.execute(
        select(
            web_sessions.c.id,
            web_sessions.c.person,
            web_sessions.c.csrf_token,
            web_sessions.c.created_at,
            web_sessions.c.last_seen_at,
            web_sessions.c.expires_at,
            users.c.name,
            users.c.roles,
            users.c.active,
        )
        .join(users, users.c.person == web_sessions.c.person)
        .where(web_sessions.c.token_hash == token_hash(token), web_sessions.c.ended_at.is_(None))
    ).first()
    if row is None:
        return None
    return Session(
        row.id,
        row.person,
        row.csrf_token,
        row.created_at,
        row.last_seen_at,
        row.expires_at,
        row.name,
        parse_roles(row.roles),
        bool(row.active),
    )


def verdict(session: Session, now: datetime, policy: SessionPolicy) -> EndReason | None:
    """Why ``session`` is over at ``now`` (under today's policy), or None while it lasts."""
    if not session.active:
        return EndReason.DISABLED
    if now >= session.created_at + policy.max_age:
        return EndReason.MAX
    if now >= expires_at(session, policy):
        return EndReason.IDLE
    return None


def expires_at(session: Session, policy: SessionPolicy) -> datetime:
    """When ``session`` runs out unless touched: the stored expiry, or earlier when the policy
    was shortened since."""
    return min(session.expires_at, _expiry(session.created_at, session.last_seen_at, policy))


def needs_touch(session: Session, now: datetime) -> bool:
    return now - session.last_seen_at >= TOUCH_EVERY


def touch(tx: Tx, session: Session, policy: SessionPolicy) -> bool:
    """Slide the idle expiry: the person did something at ``tx.now``. False when the session
    ended or ran out meanwhile (then it is not revived)."""
    return bool(
        tx.conn.execute(
            update(web_sessions)
            .where(
                web_sessions.c.id == session.id,
                web_sessions.c.ended_at.is_(None),
                web_sessions.c.expires_at > tx.now,
            )
            .values(last_seen_at=tx.now, expires_at=_expiry(session.created_at, tx.now, policy))
        ).rowcount
    )


def end(
    tx: Tx,
    session_id: int,
    reason: EndReason,
    *,
    at: datetime | None = None,
    actor: str = "",
) -> bool:
    """End a session (audited); ``at`` is when it really ended (an idle session: its expiry),
    by default now. False when it had ended already."""
    row = tx.conn.execute(
        select(web_sessions.c.person).where(
            web_sessions.c.id == session_id, web_sessions.c.ended_at.is_(None)
        )
    ).first()
    if row is None:
        return False
    ended = min(at, tx.now) if at is not None else tx.now
    tx.conn.execute(
        update(web_sessions)
        .where(web_sessions.c.id == session_id, web_sessions.c.ended_at.is_(None))
        .values(ended_at=ended, end_reason=reason.value)
    )
    tx.audit(
        actor=actor or row.person,
        action="user.sign_out" if reason is EndReason.SIGNED_OUT else "session.ended",
        entity="session",
        entity_id=session_id,
        reason=reason.value,
        after={"person": row.person, "ended_at": ended.isoformat()},
    )
    return True


def end_expired(tx: Tx, session: Session, policy: SessionPolicy) -> EndReason | None:
    """End ``session`` if it is over at ``tx.now`` (at the moment it expired); why, or None."""
    reason = verdict(session, tx.now, policy)
    if reason is None:
        return None
    at = None if reason is EndReason.DISABLED else expires_at(session, policy)
    end(tx, session.id, reason, at=at)
    return reason


def end_by_token(tx: Tx, token: str, reason: EndReason) -> bool:
    """End the open session whose cookie token is ``token`` (a cookie presented at sign-in)."""
    found = lookup(tx.conn, token)
    return found is not None and end(tx, found.id, reason)


def end_all(tx: Tx, person: str, reason: EndReason, *, actor: str = "") -> int:
    """End every open session of ``person`` (disabled, a new password); how many."""
    ids = tx.conn.scalars(
        select(web_sessions.c.id).where(
            web_sessions.c.person == person, web_sessions.c.ended_at.is_(None)
        )
    ).all()
    return sum(end(tx, session_id, reason, actor=actor) for session_id in ids)


def had_active_session(conn: Connection, person: str, at: datetime) -> bool:
    """Whether ``person`` had a web session covering moment ``at``: created at or before it and
    not yet ended (or expired) then. DOMAIN rule 2: a supervisor must be signed in while the
    trainee works; the co-signature records the answer."""
    found = conn.execute(
        select(web_sessions.c.id)
        .where(
            web_sessions.c.person == person,
            web_sessions.c.created_at <= at,
            or_(
                web_sessions.c.ended_at >= at,
                and_(web_sessions.c.ended_at.is_(None), web_sessions.c.expires_at >= at),
            ),
        )
        .limit(1)
    ).first()
    return found is not None


def sessions_of(conn: Connection, person: str, *, limit: int = 50) -> list[dict[str, object]]:
    """``person``'s newest sessions (no tokens): for the people pages and tests."""
    rows = conn.execute(
        select(
            web_sessions.c.id,
            web_sessions.c.created_at,
            web_sessions.c.last_seen_at,
            web_sessions.c.expires_at,
            web_sessions.c.ended_at,
            web_sessions.c.end_reason,
            web_sessions.c.client,
        )
        .where(web_sessions.c.person == person)
        .order_by(web_sessions.c.id.desc())
        .limit(limit)
    ).mappings()
    return [dict(row) for row in rows]
