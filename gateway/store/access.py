"""The access log (Normen): who read, changed, exported or saw the raw bytes of which patient's
results, and when; read back by patient (the extract a patient may ask for), by person, newest.

One row per result shown, with the result's patient ID as stored (the full ID: this table is
patient data, read only by the quality manager and the admin; it is never written to a log
file). One row per result rather than one naming many ids, so that "who looked at patient X"
is one indexed query (``ix_access_log_patient``) and each row says exactly which result was
seen. A list page shown again by the same person within ``REPEAT_WITHIN`` (the page's own
refresh every few seconds, a click back) adds no new row for a result already logged: the log
says when someone looked, not how often the screen redrew.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, insert, select

from gateway.store.tables import access_log, results, users
from gateway.store.writer import Tx

REPEAT_WITHIN: Final = timedelta(minutes=10)
ROUTE_CHARS: Final = 255
PATIENT_CHARS: Final = 32
_CHUNK: Final = 500  # ids per IN (...) list


class AccessAction(enum.StrEnum):
    """``access_log.action``."""

    READ = "read"
    CHANGE = "change"
    #: the bytes as received (quarantine): names and full IDs
    RAW = "raw"
    #: an extract or export naming the patient (the per-patient extract's own search)
    EXPORT = "export"


def log_access(
    tx: Tx,
    person: str,
    action: AccessAction | str,
    route: str,
    result_id: int | None = None,
    patient_id: str = "",
    detail: str = "",
) -> None:
    """One access row at ``tx.now``: ``person`` did ``action`` on ``result_id`` (of
    ``patient_id``) through ``route`` (the page, API path or command)."""
    tx.conn.execute(
        insert(access_log).values(
            at=tx.now,
            person=person,
            action=AccessAction(action).value,
            route=route[:ROUTE_CHARS],
            result_id=result_id,
            patient_id=patient_id[:PATIENT_CHARS],
            detail=detail,
        )
    )


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def log_results_shown(
    tx: Tx,
    person: str,
    route: str,
    result_ids: Iterable[int],
    *,
    action: AccessAction = AccessAction.READ,
    repeat_within: timedelta = REPEAT_WITHIN,
) -> int:
    """A row per result in ``result_ids`` that ``person`` was shown (patient ID read here),
    but for those already logged for them with ``action`` within ``repeat_within``. How many
    rows were written."""
    ids = sorted(set(result_ids))
    if not ids:
        return 0
    since = tx.now - repeat_within
    patients: dict[int, str] = {}
    seen: set[int] = set()
    for chunk in _chunks(ids):
        patients.update(
            (row.id, row.patient_id)
            for row in tx.conn.execute(
                select(results.c.id, results.c.patient_id).where(results.c.id.in_(chunk))
            )
        )
        seen.update(
            tx.conn.scalars(
                select(access_log.c.result_id).where(
                    access_log.c.person == person,
                    access_log.c.action == action.value,
                    access_log.c.at >= since,
                    access_log.c.result_id.in_(chunk),
                )
            )
        )
    rows = [
        {
            "at": tx.now,
            "person": person,
            "action": action.value,
            "route": route[:ROUTE_CHARS],
            "result_id": result_id,
            "patient_id": patients[result_id][:PATIENT_CHARS],
            "detail": "",
        }
        for result_id in ids
        if result_id in patients and result_id not in seen
    ]
    if rows:
        tx.conn.execute(insert(access_log), rows)
    return len(rows)


# --- reading ---------------------------------------------------------------------------------

_COLUMNS = (
    access_log.c.id,
    access_log.c.at,
    access_log.c.person,
    users.c.name,
    access_log.c.action,
    access_log.c.route,
    access_log.c.result_id,
    access_log.c.patient_id,
    access_log.c.detail,
)


def _rows(conn: Connection, *conditions: Any, limit: int) -> list[dict[str, Any]]:
    query = (
        select(*_COLUMNS)
        .select_from(access_log.outerjoin(users, users.c.person == access_log.c.person))
        .where(*conditions)
        .order_by(access_log.c.at.desc(), access_log.c.id.desc())
        .limit(limit)
    )
    return [
        {
            "id": row.id,
            "at": row.at,
            "person": row.person,
            "name": row.name or "",
            "action": row.action,
            "route": row.route,
            "result_id": row.result_id,
            "patient_id": row.patient_id,
            "detail": row.detail,
        }
        for row in conn.execute(query)
    ]


def by_patient(conn: Connection, patient_id: str, *, limit: int = 5000) -> list[dict[str, Any]]:
    """The extract for one patient: every access to their results, newest first.

    Each row: id, at (aware UTC), person, name ("" for a CLI user), action, route, result_id,
    patient_id, detail."""
    return _rows(conn, access_log.c.patient_id == patient_id.strip(), limit=limit)


def by_person(conn: Connection, person: str, *, limit: int = 1000) -> list[dict[str, Any]]:
    """What one person looked at or changed, newest first (rows as ``by_patient``)."""
    return _rows(conn, access_log.c.person == person, limit=limit)


def recent(
    conn: Connection, *, person: str = "", since: datetime | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The newest access rows, optionally of one person and after ``since``."""
    conditions: list[Any] = []
    if person:
        conditions.append(access_log.c.person == person)
    if since is not None:
        conditions.append(access_log.c.at >= since)
    return _rows(conn, *conditions, limit=limit)
