"""The quarantine pages: the list, one entry, and its raw bytes (an explicit, logged action)."""

from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from drivers.transports import hexdump
from gateway.privacy import scrub_quarantine, scrub_quarantine_row
from gateway.quarantine import show_raw
from gateway.store import queries
from gateway.web.auth import Authenticated, Viewer
from gateway.web.context import Web
from gateway.web.routes.params import PAGE_LIMIT, QuarantineState, row_or_404

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])


@router.get("/quarantine", response_class=HTMLResponse)
async def quarantine_page(
    request: Request, web: Web, state: Annotated[QuarantineState, Query()] = ""
) -> HTMLResponse:
    rows = await web.query(
        lambda conn: queries.list_quarantine(conn, state=state or None, limit=PAGE_LIMIT)
    )
    return web.page(request, "quarantine.html", {"rows": scrub_quarantine(rows)})


async def quarantine_row(web: Web, quarantine_id: int) -> dict[str, object]:
    """One entry as the list shows it (scrubbed, no bytes); 404 when there is none."""
    found = await row_or_404(
        quarantine_id,
        "quarantine entry",
        lambda: web.query(lambda conn: queries.get_quarantine_row(conn, quarantine_id)),
    )
    return scrub_quarantine_row(found)


async def raw_message(
    web: Web, viewer: Viewer, quarantine_id: int, via: str
) -> queries.QuarantinedMessage:
    """The bytes as received, with an audit row and access log rows for the look; 404 (and no
    row) when none."""
    job = functools.partial(
        show_raw, quarantine_id=quarantine_id, actor=viewer.actor, via=via, person=viewer.person
    )
    return await row_or_404(quarantine_id, "quarantine entry", lambda: web.write(job))


@router.get("/quarantine/{quarantine_id}", response_class=HTMLResponse)
async def quarantine_entry_page(request: Request, web: Web, quarantine_id: int) -> HTMLResponse:
    row = await quarantine_row(web, quarantine_id)
    return web.page(request, "quarantine_entry.html", {"q": row, "raw": None})


@router.get("/quarantine/{quarantine_id}/raw", response_class=HTMLResponse)
async def quarantine_raw_page(
    request: Request,
    web: Web,
    quarantine_id: int,
    viewer: Annotated[Viewer, Authenticated],
) -> HTMLResponse:
    row = await quarantine_row(web, quarantine_id)
    found = await raw_message(web, viewer, quarantine_id, f"GET /quarantine/{quarantine_id}/raw")
    raw = {
        "text": found.raw.decode("utf-8", "replace"),
        "hexdump": "\n".join(hexdump(found.raw)),
    }
    return web.page(request, "quarantine_entry.html", {"q": row, "raw": raw})
