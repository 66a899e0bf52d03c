"""The overview page: counters, instruments, held results by reason, LIS link, newest results."""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection

from gateway.model import State
from gateway.privacy import scrub_outbox, scrub_result
from gateway.store import queries
from gateway.web import i18n
from gateway.web.auth import Authenticated
from gateway.web.context import Web
from gateway.web.live import gateway_status, live_snapshot, merge_instruments
from gateway.web.routes.qc import instrument_panel, status_lines
from gateway.web.shown import ids_of, log_results_shown

RECENT_RESULTS: Final = 15
RECENT_OUTBOX: Final = 8

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])


def _counters(summary: queries.Summary, tr: i18n.Translator) -> list[dict[str, Any]]:
    by_state = summary.by_state
    held = by_state.get(State.HELD.value, 0)
    rows: list[tuple[str, int, str, str]] = [
        ("received", summary.received, "/results", "plain"),
        ("held", held, "/results?state=held", "warn" if held else "plain"),
        ("queued", by_state.get(State.QUEUED.value, 0), "/results?state=queued", "plain"),
        ("sent", by_state.get(State.SENT.value, 0), "/results?state=sent", "plain"),
        (
            "acknowledged",
            by_state.get(State.ACKNOWLEDGED.value, 0),
            "/results?state=acknowledged",
            "good",
        ),
        (
            "rejected",
            by_state.get(State.REJECTED.value, 0),
            "/results?state=rejected",
            "bad" if by_state.get(State.REJECTED.value, 0) else "plain",
        ),
        (
            "quarantined",
            summary.quarantined,
            "/quarantine",
            "bad" if summary.quarantined else "plain",
        ),
        ("deviations", summary.deviations, "/deviations", "plain"),
    ]
    return [
        {"key": key, "label": tr.t(f"counter.{key}"), "value": value, "href": href, "tone": tone}
        for key, value, href, tone in rows
    ]


def _reads(conn: Connection) -> dict[str, Any]:
    """Everything the page shows from the store, read on one connection (one snapshot)."""
    return {
        "summary": queries.summary(conn),
        "instrument_rows": queries.list_instruments(conn),
        "results": [scrub_result(r) for r in queries.list_results(conn, limit=RECENT_RESULTS)],
        "outbox": scrub_outbox(queries.outbox_status(conn, limit=RECENT_OUTBOX)),
    }


@router.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, web: Web) -> HTMLResponse:
    live = live_snapshot(web.gateway)
    status = gateway_status(web.gateway)
    data = await web.query(_reads)
    await log_results_shown(request, web, ids_of(data["results"]))
    summary: queries.Summary = data["summary"]
    tr = web.translator(request)
    held = summary.by_state.get(State.HELD.value, 0)
    # issue 11: each instrument's QC at a glance (its worst test), linking to /qc
    qc_panel = instrument_panel(await status_lines(web))
    return web.page(
        request,
        "dashboard.html",
        {
            "instruments": merge_instruments(web.config, data["instrument_rows"], live),
            "counters": _counters(summary, tr),
            "held_by_reason": sorted(
                summary.held_by_reason.items(), key=lambda kv: (-kv[1], kv[0])
            ),
            # one result can have several hold reasons, so the reasons can add up to more
            # than the held counter: the page says why when they do
            "held_overlap": sum(summary.held_by_reason.values()) > held,
            "results": data["results"],
            "outbox": data["outbox"],
            "lis": None if status is None else status.get("lis"),
            "lis_configured": web.config.lis is not None,
            "qc_panel": qc_panel,
        },
    )
