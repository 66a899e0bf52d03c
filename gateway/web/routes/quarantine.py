"""The quarantine page: messages that could not be decoded, optionally of one state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from gateway.store import queries
from gateway.web.auth import Authenticated
from gateway.web.context import Web
from gateway.web.routes.params import PAGE_LIMIT, QuarantineState
from gateway.web.scrub import scrub_quarantine

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])


@router.get("/quarantine", response_class=HTMLResponse)
async def quarantine_page(
    request: Request, web: Web, state: Annotated[QuarantineState, Query()] = ""
) -> HTMLResponse:
    rows = await web.query(
        lambda conn: queries.list_quarantine(conn, state=state or None, limit=PAGE_LIMIT)
    )
    return web.page(request, "quarantine.html", {"rows": scrub_quarantine(rows)})
