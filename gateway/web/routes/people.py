"""The operators and certifications pages: the roster (everyone, with each certification's
status today in the site's time zone), one person's record, and the competence export.

Status "today" is ``competence.roster`` at the web's clock: a certification whose due date has
passed shows as expired from the next midnight Europe/Oslo, with its due date. An operator
(anyone without a ``PEOPLE_READERS`` role) sees only their own record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from gateway.people.competence import format_competence
from gateway.store.competence import export_records, roster
from gateway.store.person_record import ACTIVITY_DAYS, person_record
from gateway.store.reminders import due_list
from gateway.web import access, people_view
from gateway.web.auth import Authenticated, Refused, Viewer
from gateway.web.context import Web, WebContext
from gateway.web.i18n import day_text

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])

StatusFilter = Literal["", "trainee", "certified", "expired", "suspended", "not_yet"]
#: reminders shown above the roster (the due list has them all)
NOTICES_SHOWN = 6


def day_helper(web: WebContext, request: Request) -> Any:
    lang = web.language(request)
    return lambda value: day_text(lang, value)


def today_of(web: WebContext, now: datetime) -> Any:
    return now.astimezone(web.zone).date()


@router.get("/people", response_class=HTMLResponse)
async def people_page(
    request: Request,
    web: Web,
    viewer: Annotated[Viewer, Authenticated],
    task: Annotated[str, Query(max_length=128)] = "",
    status: StatusFilter = "",
) -> HTMLResponse:
    now = web.now()

    def reads(conn: Connection) -> dict[str, Any]:
        people = roster(conn, now, web.zone)
        return {"people": people, "notices": due_list(conn, today_of(web, now), web.config)}

    data = await web.query(reads)
    people = data["people"]
    return web.page(
        request,
        "people.html",
        {
            "people": people_view.filtered(people, task, status),
            "total": len(people),
            "names": people_view.names_of(people),
            "tasks": people_view.tasks_of(people),
            "statuses": [*people_view.STATUSES, people_view.NOT_YET],
            "task": task,
            "status": status,
            "notices": data["notices"][:NOTICES_SHOWN],
            "notices_total": len(data["notices"]),
            "today": today_of(web, now),
            "day": day_helper(web, request),
            "shown_status": people_view.shown_status,
            "lapsed": people_view.lapsed,
            "may_edit": viewer.has(*access.COMPETENCE_EDITORS),
        },
        refresh=False,
    )


@router.get("/people/export.csv")
async def people_export(web: Web) -> Response:
    """The competence records in the import's CSV format (``trygg operators export --out``):
    UTF-8 with a byte-order mark so Excel reads æøå."""
    people, certs = await web.query(export_records)
    data = format_competence(people, certs)
    day = web.now().astimezone(web.zone).date().isoformat()
    return Response(
        content=data.encode("utf-8-sig"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="competence-{day}.csv"'},
    )


@router.get("/my-certifications")
async def my_certifications(viewer: Annotated[Viewer, Authenticated]) -> RedirectResponse:
    return RedirectResponse(f"/people/{viewer.person}", status_code=303)


@router.get("/people/{person}", response_class=HTMLResponse)
async def person_page(
    request: Request,
    web: Web,
    viewer: Annotated[Viewer, Authenticated],
    person: str,
) -> HTMLResponse:
    """One person's record; refused (403) for someone else's unless a ``PEOPLE_READERS``
    role, before looking the person up (an operator learns nothing of who exists)."""
    own = person == viewer.person
    if not own and not viewer.has(*access.PEOPLE_READERS):
        raise Refused("role")
    now = web.now()

    def reads(conn: Connection) -> dict[str, Any]:
        everyone = roster(conn, now, web.zone)
        record = person_record(conn, person, now, web.zone, web.config, everyone=everyone)
        notices = due_list(conn, today_of(web, now), web.config) if record else []
        return {
            "record": record,
            "notices": [n for n in notices if n["person"] == person],
            "names": people_view.names_of(everyone),
        }

    data = await web.query(reads)
    tr = web.translator(request)
    if data["record"] is None:
        return web.error_page(request, 404, tr.t("people.not_found", person=person[:64]))
    return web.page(
        request,
        "person.html",
        {
            **data,
            "own": own,
            "activity_days": ACTIVITY_DAYS,
            "may_list": viewer.has(*access.PEOPLE_READERS),
            "today": today_of(web, now),
            "day": day_helper(web, request),
            "shown_status": people_view.shown_status,
            "lapsed": people_view.lapsed,
        },
        refresh=False,
    )
