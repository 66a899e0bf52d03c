"""The access log pages (Normen): the newest accesses (by person), and the per-patient extract.

The extract is asked for with a form posted with its CSRF token (the patient ID stays out of
URLs, browser history and server logs), and the search itself is an access row (``export``):
looking up who looked at a patient is a look at that patient too.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection

from gateway.national_id import mask
from gateway.store import access
from gateway.web.auth import Authenticated, Viewer
from gateway.web.context import Web
from gateway.web.forms import form_fields
from gateway.web.routes.params import PAGE_LIMIT
from gateway.web.shown import route_of

router = APIRouter(include_in_schema=False)

PATIENT_CHARS: Final = 32


def _masked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**row, "patient_id": mask(row["patient_id"])} for row in rows]


@router.get("/access-log", response_class=HTMLResponse)
async def access_log_page(
    request: Request,
    web: Web,
    person: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    """The newest accesses, patient IDs masked; ``person`` narrows to one person."""
    person = person.strip()
    rows = await web.query(lambda conn: access.recent(conn, person=person, limit=PAGE_LIMIT))
    return web.page(
        request,
        "access_log.html",
        {"rows": _masked(rows), "person": person},
        refresh=False,
    )


def _extract_form(
    request: Request,
    web: Web,
    *,
    patient: str = "",
    rows: list[dict[str, Any]] | None = None,
    error: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    return web.page(
        request,
        "access_log_patient.html",
        {"patient": patient, "rows": rows, "error": error},
        status_code=status_code,
        refresh=False,
    )


@router.get("/access-log/patient", response_class=HTMLResponse)
async def patient_extract_form(request: Request, web: Web) -> HTMLResponse:
    return _extract_form(request, web)


@router.post("/access-log/patient", response_class=HTMLResponse)
async def patient_extract(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated]
) -> HTMLResponse:
    """Every access to one patient's results; the search is logged as an ``export`` (and
    shows in the next extract)."""
    patient = (await form_fields(request)).get("patient", "").strip()
    if not patient or len(patient) > PATIENT_CHARS:
        tr = web.translator(request)
        return _extract_form(
            request,
            web,
            patient=patient[:PATIENT_CHARS],
            error=tr.t("access.bad_patient"),
            status_code=422,
        )

    def reads(conn: Connection) -> list[dict[str, Any]]:
        return access.by_patient(conn, patient)

    # read, then log the search, then show: the extract shows the accesses before this one,
    # and nothing is shown unless the search was logged
    rows = await web.query(reads)
    await web.write(
        functools.partial(
            access.log_access,
            person=viewer.person,
            action=access.AccessAction.EXPORT,
            route=route_of(request),
            result_id=None,
            patient_id=patient,
            detail="per-patient access extract",
        )
    )
    return _extract_form(request, web, patient=patient, rows=rows)
