"""The outbox page: the LIS link's state, counts by state and the newest messages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from gateway.privacy import scrub_outbox
from gateway.store import queries
from gateway.web.auth import Authenticated
from gateway.web.context import Web
from gateway.web.live import gateway_status
from gateway.web.routes.params import PAGE_LIMIT

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])


@router.get("/outbox", response_class=HTMLResponse)
async def outbox_page(request: Request, web: Web) -> HTMLResponse:
    status = gateway_status(web.gateway)
    outbox = await web.query(lambda conn: queries.outbox_status(conn, limit=PAGE_LIMIT))
    return web.page(
        request,
        "outbox.html",
        {
            "outbox": scrub_outbox(outbox),
            "lis": None if status is None else status.get("lis"),
            "lis_configured": web.config.lis is not None,
        },
    )
