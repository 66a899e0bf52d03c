"""The results pages: the filtered list and one result with its holds and LIS messages."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection

from gateway.config import Config
from gateway.model import State
from gateway.privacy import scrub_result
from gateway.store import queries
from gateway.web.auth import Authenticated
from gateway.web.context import Web
from gateway.web.routes.params import is_row_id
from gateway.web.shown import ids_of, log_results_shown

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])


def _instrument_choices(config: Config, conn: Connection) -> list[str]:
    """The filter's instruments: configured ones first, then any the store knows from before."""
    known = [inst.id for inst in config.instruments]
    return known + sorted(
        str(r["id"]) for r in queries.list_instruments(conn) if r["id"] not in known
    )


@router.get("/results", response_class=HTMLResponse)
async def results_page(
    request: Request,
    web: Web,
    state: Annotated[State | Literal[""], Query()] = "",
    instrument: str = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> HTMLResponse:
    def reads(conn: Connection) -> dict[str, Any]:
        found = queries.list_results(
            conn, state=state or None, instrument=instrument or None, limit=limit
        )
        return {
            "results": [scrub_result(r) for r in found],
            "instrument_choices": _instrument_choices(web.config, conn),
        }

    data = await web.query(reads)
    await log_results_shown(request, web, ids_of(data["results"]))
    return web.page(
        request,
        "results.html",
        {
            **data,
            "states": [s.value for s in State],
            "state": state,
            "instrument": instrument,
            "limit": limit,
            "limits": sorted({25, 100, 500, limit}),
        },
    )


@router.get("/results/{result_id}", response_class=HTMLResponse)
async def result_page(request: Request, web: Web, result_id: int) -> HTMLResponse:
    found = None
    if is_row_id(result_id):
        found = await web.query(lambda conn: queries.get_result(conn, result_id))
    if found is None:
        tr = web.translator(request)
        return web.error_page(request, 404, tr.t("error.result_not_found", id=result_id))
    await log_results_shown(request, web, [result_id])
    return web.page(request, "result.html", {"result": scrub_result(found)})
