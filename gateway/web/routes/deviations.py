"""The deviations page: recorded deviations (avvik), newest first."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from gateway.privacy import scrub_deviations
from gateway.store import queries
from gateway.web.auth import Authenticated
from gateway.web.context import Web
from gateway.web.routes.params import PAGE_LIMIT

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])


@router.get("/deviations", response_class=HTMLResponse)
async def deviations_page(request: Request, web: Web) -> HTMLResponse:
    rows = await web.query(lambda conn: queries.list_deviations(conn, limit=PAGE_LIMIT))
    return web.page(request, "deviations.html", {"rows": scrub_deviations(rows)})
