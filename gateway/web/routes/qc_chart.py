"""The Levey-Jennings chart page (inline SVG, tooltips as SVG titles: no JavaScript), comments on
control points (attributable, audited), and the monthly QC report as printable HTML and PDF."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jinja2
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from gateway.catalogue import text
from gateway.qc import report as qc_report
from gateway.qc.points import QcPoint, SeriesKey
from gateway.qc.stats import Month
from gateway.store import qc_history
from gateway.web import i18n
from gateway.web.auth import Authenticated, Viewer
from gateway.web.context import HERE, Web, WebContext
from gateway.web.flash import flash_of
from gateway.web.forms import form_fields
from gateway.web.routes.params import is_row_id

router = APIRouter(include_in_schema=False, dependencies=[Authenticated])

#: without a month the chart shows this many days back
DEFAULT_DAYS: Final = 90
MAX_FIELD: Final = 64
#: the report's stylesheet: linked by the page, copied into the CLI's HTML file
REPORT_CSS: Final = HERE / "static" / "qc_report.css"
Param = Annotated[str, Query(max_length=MAX_FIELD)]


def parse_month(text: str) -> Month | None:
    try:
        return Month.parse(text)
    except ValueError:
        return None


def chosen_series(
    keys: list[tuple[SeriesKey, list[str]]], instrument: str, test: str, level: str
) -> tuple[SeriesKey, list[str]] | None:
    """The series asked for; without a choice, the first one stored (None: none stored)."""
    for key, lots in keys:
        if (key.instrument_id, key.test_code, key.level) == (instrument, test, level):
            return key, lots
    if not (instrument or test or level) and keys:
        return keys[0]
    if keys and (instrument or test):  # a partial choice: the first series that fits it
        for key, lots in keys:
            if instrument in ("", key.instrument_id) and test in ("", key.test_code):
                return key, lots
    return None


def _window(
    month: Month | None, now: datetime, zone: ZoneInfo
) -> tuple[datetime | None, datetime | None]:
    if month is not None:
        return month.bounds(zone)
    return now - timedelta(days=DEFAULT_DAYS), None


def _chart_data(
    conn: Connection, key: SeriesKey | None, lot: str, start: datetime | None, end: datetime | None
) -> tuple[list[QcPoint], dict[str, qc_history.LotInfo]]:
    if key is None:
        return [], {}
    points = qc_history.series_points(conn, key, start=start, end=end, lot=lot or None)
    return points, qc_history.lot_infos(conn, key.instrument_id, key.test_code)


def _svg(points: list[QcPoint], key: SeriesKey, tr: i18n.Translator) -> str:
    series = qc_report.Series(
        key,
        next((p.unit for p in reversed(points) if p.unit), ""),
        tuple(dict.fromkeys(p.lot for p in points if p.lot)),
        tuple(points),
    )
    return qc_report.series_svg(series, tr.t, tr.when, tr.lang, tr.zone)


@dataclass(frozen=True, slots=True)
class Choice:
    """What the chart's query asks for (the page and the SVG alone take the same query)."""

    instrument: str
    test: str
    level: str
    lot: str
    month: str


def _choice(
    instrument: Param = "", test: Param = "", level: Param = "", lot: Param = "", month: Param = ""
) -> Choice:
    return Choice(instrument, test, level, lot, month)


Chosen = Annotated[Choice, Depends(_choice)]


@dataclass(frozen=True, slots=True)
class Charted:
    """The series the query chose (``key`` None: none fits) and its points in the window."""

    keys: list[tuple[SeriesKey, list[str]]]
    found: tuple[SeriesKey, list[str]] | None
    points: list[QcPoint]
    lot_infos: dict[str, qc_history.LotInfo]

    @property
    def key(self) -> SeriesKey | None:
        return self.found[0] if self.found else None


async def _charted(web: WebContext, choice: Choice) -> Charted | None:
    """The chosen series with its points; None when ``month`` is not a month."""
    chosen_month = parse_month(choice.month) if choice.month else None
    if choice.month and chosen_month is None:
        return None
    start, end = _window(chosen_month, web.now(), web.zone)
    keys = await web.query(qc_history.series_keys)
    found = chosen_series(keys, choice.instrument, choice.test, choice.level)
    key = found[0] if found else None
    points, lots = await web.query(lambda conn: _chart_data(conn, key, choice.lot, start, end))
    return Charted(keys, found, points, lots)


@router.get("/qc/chart", response_class=HTMLResponse)
async def chart_page(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated], choice: Chosen
) -> HTMLResponse:
    tr = web.translator(request)
    charted = await _charted(web, choice)
    if charted is None:
        return web.error_page(request, 400, tr.t("qc.page.bad_month", month=choice.month))
    key, keys = charted.key, charted.keys
    svg = await run_svg(charted.points, key, tr) if key is not None else ""
    query = {
        "instrument": key.instrument_id if key else choice.instrument,
        "test": key.test_code if key else choice.test,
        "level": key.level if key else choice.level,
        "lot": choice.lot,
        "month": choice.month,
    }
    message = flash_of(request).take(viewer.session_id, request.url.path)
    return web.page(
        request,
        "qc_chart.html",
        {
            "keys": keys,
            "instruments": sorted({k.instrument_id for k, _l in keys}),
            "tests": sorted({k.test_code for k, _l in keys}),
            "levels": sorted({k.level for k, _l in keys}),
            "lots": charted.found[1] if charted.found else [],
            "lot_infos": charted.lot_infos,
            "chosen": query,
            "key": key,
            "svg": svg,
            "points": list(reversed(charted.points)),
            "back": "/qc/chart?" + urlencode(query),
            "svg_url": "/qc/chart.svg?" + urlencode(query),
            "month_default": str(Month.of(web.now(), web.zone)),
            "flash": message(tr.lang) if message else "",
        },
        refresh=False,
    )


async def run_svg(points: list[QcPoint], key: SeriesKey, tr: i18n.Translator) -> str:
    """Drawing takes tens of milliseconds: on a worker thread, never on the event loop."""
    return await run_in_threadpool(_svg, points, key, tr)


@router.get("/qc/chart.svg")
async def chart_svg(request: Request, web: Web, choice: Chosen) -> Response:
    tr = web.translator(request)
    charted = await _charted(web, choice)
    if charted is None:
        return Response(tr.t("qc.page.bad_month", month=choice.month), status_code=400)
    if charted.key is None:
        return Response(tr.t("qc.page.none"), status_code=404, media_type="text/plain")
    svg = await run_svg(charted.points, charted.key, tr)
    return Response(svg, media_type="image/svg+xml")


def _safe_back(back: str) -> str:
    """Only back to the chart page itself (never an address a form could smuggle in)."""
    return back if back.startswith("/qc/chart?") or back == "/qc/chart" else "/qc/chart"


@router.post("/qc/points/{qc_result_id}/comment")
async def comment_point(
    request: Request, web: Web, viewer: Annotated[Viewer, Authenticated], qc_result_id: int
) -> Response:
    fields = await form_fields(request)
    back = _safe_back(fields.get("back", ""))
    tr = web.translator(request)
    if not is_row_id(qc_result_id):
        return web.error_page(request, 404, tr.t("qc.page.no_point", id=qc_result_id))
    comment = fields.get("text", "")[: qc_history.MAX_COMMENT_CHARS]
    if not comment.strip():
        return web.error_page(request, 422, tr.t("qc.page.comment_empty"))
    person = viewer.person
    try:
        await web.write(lambda tx: qc_history.add_comment(tx, qc_result_id, person, comment))
    except qc_history.NoSuchControl:
        return web.error_page(request, 404, tr.t("qc.page.no_point", id=qc_result_id))
    flash_of(request).put(
        viewer.session_id,
        "/qc/chart",
        lambda lang: text(lang, "qc.page.comment_done"),
    )
    return RedirectResponse(back, status_code=303)


def render_report(
    environment: jinja2.Environment,
    tr: i18n.Translator,
    report: qc_report.MonthReport,
    pdf_url: str = "",
    inline_css: str = "",
) -> str:
    """The report as one printable HTML document (its CSS inline: it prints, and saves, alone);
    the web page and ``trygg qc report --html`` (with ``inline_css``) both use it."""
    charts = [
        {"series": s, "svg": qc_report.series_svg(s, tr.t, tr.when, tr.lang, tr.zone)}
        for s in report.series
    ]
    context: Mapping[str, Any] = {
        "lang": tr.lang,
        "t": tr.t,
        "when": tr.when,
        "report": report,
        "columns": qc_report.STATS_COLUMNS,
        "rows": [{"cells": qc_report.stats_cells(r, tr.lang), "unit": r.unit} for r in report.rows],
        "charts": charts,
        "pdf_url": pdf_url,
        # the CLI's file carries its CSS (it is opened alone); the page links /static (CSP)
        "inline_css": inline_css,
    }
    return environment.get_template("qc_report.html").render(context)


async def _report(
    request: Request, web: Web, month: str, instrument: str
) -> qc_report.MonthReport | Response:
    tr = web.translator(request)
    chosen = parse_month(month) if month else Month.of(web.now(), web.zone)
    if chosen is None:
        return web.error_page(request, 400, tr.t("qc.page.bad_month", month=month))
    start, end = chosen.bounds(web.zone)
    points = await web.query(
        lambda conn: qc_history.month_points(conn, start, end, instrument=instrument or None)
    )
    return qc_report.build(chosen, points, web.now(), instrument)


@router.get("/qc/report", response_class=HTMLResponse)
async def report_page(
    request: Request, web: Web, month: Param = "", instrument: Param = ""
) -> Response:
    built = await _report(request, web, month, instrument)
    if isinstance(built, Response):
        return built
    tr = web.translator(request)
    pdf_url = "/qc/report.pdf?" + urlencode({"month": str(built.month), "instrument": instrument})
    html = await run_in_threadpool(render_report, web.templates.env, tr, built, pdf_url)
    return HTMLResponse(html)


@router.get("/qc/report.pdf")
async def report_pdf(
    request: Request, web: Web, month: Param = "", instrument: Param = ""
) -> Response:
    built = await _report(request, web, month, instrument)
    if isinstance(built, Response):
        return built
    tr = web.translator(request)
    data = await run_in_threadpool(qc_report.report_pdf, built, tr.t, tr.when, tr.lang, web.zone)
    name = f"qc-{built.month}{'-' + instrument if instrument else ''}.pdf"
    return Response(
        data,
        media_type="application/pdf",
        headers={"content-disposition": f'inline; filename="{name}"'},
    )
