"""The JSON API under /api (behind sign-in; reads of results and raw bytes are logged), and
/api/health (no sign-in)."""

from __future__ import annotations

import base64
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from gateway import __version__
from gateway.model import State
from gateway.orders.store import list_orders
from gateway.privacy import scrub_deviations, scrub_outbox, scrub_quarantine, scrub_result
from gateway.store import deviations as deviation_store
from gateway.store import queries
from gateway.store.health import store_failure
from gateway.web.auth import Authenticated, Viewer
from gateway.web.context import Web
from gateway.web.live import gateway_status, live_snapshot, merge_instruments, store_health_of
from gateway.web.routes.params import (
    OrderState,
    QuarantineState,
    order_state_filter,
    row_or_404,
)
from gateway.web.routes.quarantine import quarantine_row, raw_message
from gateway.web.shown import ids_of, log_results_shown

api = APIRouter(prefix="/api", tags=["api"], dependencies=[Authenticated])


@api.get("/summary", summary="Counts over the whole store")
async def api_summary(web: Web) -> dict[str, Any]:
    """Results by state, held results by reason, quarantine, QC, outbox and deviation counts."""
    return asdict(await web.query(queries.summary))


@api.get("/instruments", summary="Instruments and their connection state")
async def api_instruments(web: Web) -> list[dict[str, Any]]:
    """Configured instruments; "live" holds the running gateway's counters when attached."""
    live = live_snapshot(web.gateway)
    rows = await web.query(queries.list_instruments)
    return merge_instruments(web.config, rows, live)


@api.get("/results", summary="Results, newest first")
async def api_results(
    request: Request,
    web: Web,
    state: Annotated[State | Literal[""], Query(description="only results in this state")] = "",
    instrument: Annotated[str, Query(description="only results from this instrument")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Each result with its holds; patient IDs are masked. Every result returned is written
    to the access log (who saw which patient's result, when)."""
    found = await web.query(
        lambda conn: queries.list_results(
            conn, state=state or None, instrument=instrument or None, limit=limit
        )
    )
    await log_results_shown(request, web, ids_of(found))
    return [scrub_result(r) for r in found]


@api.get("/results/{result_id}", summary="One result with its holds and LIS messages")
async def api_result(request: Request, web: Web, result_id: int) -> dict[str, Any]:
    """Written to the access log."""
    found = await row_or_404(
        result_id, "result", lambda: web.query(lambda conn: queries.get_result(conn, result_id))
    )
    await log_results_shown(request, web, [result_id])
    return scrub_result(found)


@api.get("/outbox", summary="The LIS outbox: counts, oldest waiting, newest messages")
async def api_outbox(web: Web, limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict[str, Any]:
    return scrub_outbox(await web.query(lambda conn: queries.outbox_status(conn, limit=limit)))


@api.get("/quarantine", summary="Messages that could not be decoded")
async def api_quarantine(
    web: Web,
    state: Annotated[QuarantineState, Query()] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    rows = await web.query(
        lambda conn: queries.list_quarantine(conn, state=state or None, limit=limit)
    )
    return scrub_quarantine(rows)


@api.get("/quarantine/{quarantine_id}", summary="One quarantined message (without its bytes)")
async def api_quarantine_entry(web: Web, quarantine_id: int) -> dict[str, Any]:
    return await quarantine_row(web, quarantine_id)


@api.get(
    "/quarantine/{quarantine_id}/raw",
    summary="The bytes of one quarantined message (logged in the audit log)",
)
async def api_quarantine_raw(
    web: Web, quarantine_id: int, viewer: Annotated[Viewer, Authenticated]
) -> dict[str, Any]:
    """The bytes as received may hold names and national IDs: every call writes an audit row
    and access log rows (who, what, when). ``text`` is the bytes decoded as UTF-8
    (undecodable bytes replaced), ``base64`` the bytes exactly."""
    found = await raw_message(
        web, viewer, quarantine_id, f"GET /api/quarantine/{quarantine_id}/raw"
    )
    return {
        "id": found.id,
        "instrument": found.instrument_id,
        "bytes": len(found.raw),
        "text": found.raw.decode("utf-8", "replace"),
        "base64": base64.b64encode(found.raw).decode("ascii"),
    }


@api.get("/orders", summary="The worklist: order lines, newest first")
async def api_orders(
    web: Web,
    state: Annotated[OrderState, Query(description="open, cancelled or all")] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """One line per specimen and test code; "resulted" says whether a result with the same
    specimen and test has arrived. Patient IDs are masked."""
    return await web.query(
        lambda conn: list_orders(conn, state=order_state_filter(state), limit=limit)
    )


@api.get("/deviations", summary="Recorded deviations (avvik), newest first")
async def api_deviations(
    web: Web,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    state: Annotated[str, Query(description="open, in_progress or closed", max_length=16)] = "",
    category: Annotated[
        str, Query(description="equipment, it, hms, clinical or quality", max_length=16)
    ] = "",
    instrument: Annotated[str, Query(max_length=64)] = "",
    kind: Annotated[str, Query(max_length=64)] = "",
) -> list[dict[str, Any]]:
    """Each with its category, responsible function, immediate action, cause, corrective
    action, state and who changed and closed it when. National IDs in the texts are masked."""
    filters = deviation_store.Filters(
        state=state, category=category, instrument=instrument, kind=kind
    )
    return scrub_deviations(
        await web.query(lambda conn: deviation_store.list_deviations(conn, filters, limit=limit))
    )


health = APIRouter(prefix="/api", tags=["health"])


@health.get("/health", summary="Liveness and database check (no login needed)")
async def api_health(web: Web) -> JSONResponse:
    """Status "ok" when the database answers and the running gateway's store is healthy;
    otherwise 503 with status "error" and "database" naming the problem ("corrupt",
    "unreachable", ...). "store" is the gateway's store health (its last periodic check:
    SQLite's quick_check or PostgreSQL's connection), null when no gateway runs here."""
    store = store_health_of(web.gateway)
    body: dict[str, Any] = {
        "status": "ok",
        "site": web.config.site.name,
        "version": __version__,
        "time": datetime.now(UTC).isoformat(),
        "database": "ok",
        "gateway": gateway_status(web.gateway),
        "store": None,
    }
    try:
        await web.query(queries.ping)
    except Exception as exc:
        failure = store_failure(exc)
        if store is not None:
            store.fail_from(exc, source="read")
        body.update(status="error", database=failure.code if failure else exc.__class__.__name__)
    if store is not None:
        body["store"] = store.snapshot()
        if not store.ok:
            body.update(status="error", database=body["store"]["problem"])
    return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)
