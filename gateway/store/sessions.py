"""Web sessions as the hold actions read them: was a person signed in at a given moment?

A minimal module written by the hold actions (the co-signature records whether the supervisor
was signed in while the trainee worked, DOMAIN rule 2); the sign-in work owns this module and
replaces it with the full session store, keeping ``had_active_session`` as it is here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, or_, select

from gateway.store.tables import web_sessions

#: ``[people] session_idle_minutes``' default: a session seen longer ago than this had ended
IDLE = timedelta(minutes=15)


def had_active_session(conn: Connection, person: str, at: datetime) -> bool:
    """Whether ``person`` had a web session open at ``at``: begun by then, not signed out or
    expired before it, and not idle longer than the idle limit at that moment."""
    rows = conn.execute(
        select(web_sessions.c.last_seen_at, web_sessions.c.expires_at).where(
            web_sessions.c.person == person,
            web_sessions.c.created_at <= at,
            or_(web_sessions.c.ended_at.is_(None), web_sessions.c.ended_at >= at),
        )
    ).all()
    # the idle and expiry limits are compared here, not in SQL: interval arithmetic on stored
    # times differs between SQLite and PostgreSQL
    return any(at <= row.last_seen_at + IDLE and at <= row.expires_at for row in rows)
