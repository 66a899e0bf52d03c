"""The web dashboard: server-rendered pages (Jinja2), the JSON API under /api, and their wiring.

Adding a page: write a template that extends ``base.html``, add a handler to ``pages`` below
(read the store with ``await web.query(...)``, answer with ``web.page(...)``), add its
``NavItem`` to ``NAV`` and its strings to both catalogues (``gateway/locale/*/LC_MESSAGES/``).
Authentication: see ``current_viewer``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jinja2
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection, Engine
from sqlalchemy import text as sql_text
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import __version__
from gateway.config import Config
from gateway.model import State
from gateway.national_id import mask
from gateway.orders.store import list_orders
from gateway.store import queries
from gateway.texts import connection_technical, hold_technical, without_bytes
from gateway.web import i18n

T = TypeVar("T")

HERE: Final = Path(__file__).resolve().parent
REFRESH_SECONDS: Final = 5
LANG_COOKIE: Final = "trygg_lang"
RECENT_RESULTS: Final = 15
RECENT_OUTBOX: Final = 8
PAGE_LIMIT: Final = 200

# Everything is served from this origin: lab PCs are often offline, and nothing may leak out.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: Final[Mapping[str, str]] = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}

QuarantineState = Literal["", "open", "replayed", "discarded"]
OrderState = Literal["open", "cancelled", "all"]
ORDER_STATES: Final[tuple[OrderState, ...]] = ("open", "cancelled", "all")


# --- authentication hook -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is looking at the dashboard; ``authenticated`` is False until login exists."""

    name: str = "anonymous"
    roles: tuple[str, ...] = ()
    authenticated: bool = False


ANONYMOUS: Final = Viewer()


async def current_viewer(request: Request) -> Viewer:
    """AUTH HOOK: every page and every /api route (except /api/health) depends on this.

    Today everyone on the lab PC is an anonymous viewer. The login issue replaces this body:
    read the session cookie, return the ``Viewer``, or raise ``HTTPException(401)`` (API) /
    redirect to the login page (pages). Templates see it as ``viewer``.
    """
    request.state.viewer = ANONYMOUS
    return ANONYMOUS


Authenticated = Depends(current_viewer)


# --- navigation --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NavItem:
    """One entry of the top navigation: a path and the i18n key of its label."""

    path: str
    key: str

    def active(self, path: str) -> bool:
        return path == self.path or (self.path != "/" and path.startswith(self.path + "/"))


NAV: Final[tuple[NavItem, ...]] = (
    NavItem("/", "nav.dashboard"),
    NavItem("/results", "nav.results"),
    NavItem("/orders", "nav.orders"),
    NavItem("/outbox", "nav.outbox"),
    NavItem("/quarantine", "nav.quarantine"),
    NavItem("/deviations", "nav.deviations"),
)


# --- masking -----------------------------------------------------------------------------------

_ELEVEN_DIGITS = re.compile(r"(?<!\d)\d{11}(?!\d)")


def scrub(text: str) -> str:
    """Mask anything shaped like a national ID inside free text (details, errors, ACK texts)."""
    return _ELEVEN_DIGITS.sub(lambda match: mask(match.group()), text)


def scrub_result(result: dict[str, Any]) -> dict[str, Any]:
    """A result dict with its hold texts scrubbed (the patient ID is masked by the query)."""
    result["holds"] = [
        {
            **hold,
            "params": _scrub_params(hold.get("params")),
            "detail": scrub(hold["detail"]),
            "detail_nb": scrub(hold.get("detail_nb", "")),
            "action": scrub(hold["action"]),
        }
        for hold in result["holds"]
    ]
    return result


def _scrub_params(params: Mapping[str, str] | None) -> dict[str, str] | None:
    return None if params is None else {key: scrub(value) for key, value in params.items()}


def scrub_outbox(status: dict[str, Any]) -> dict[str, Any]:
    status["messages"] = [{**m, "ack_text": scrub(m["ack_text"])} for m in status["messages"]]
    return status


def scrub_quarantine(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **row,
            "error": scrub(row["error"]),
            "params": _scrub_params(row["params"]),
            "reason_text": scrub(row["reason_text"]),
        }
        for row in rows
    ]


def scrub_deviations(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**row, "summary": scrub(row["summary"]), "detail": scrub(row["detail"])} for row in rows
    ]


# --- live state from a running gateway ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveInstrument:
    """A copy of ``gateway.app.InstrumentLive`` taken on the event loop."""

    connected: bool
    detail: str
    state: str
    messages: int
    results: int
    quarantined: int


def live_snapshot(gateway: object | None) -> dict[str, LiveInstrument]:
    """Copy the running gateway's in-memory instrument state (call on the loop's thread)."""
    table = getattr(getattr(gateway, "live", None), "instruments", None)
    if not isinstance(table, dict):
        return {}
    return {
        str(instrument_id): LiveInstrument(
            connected=bool(getattr(live, "connected", False)),
            detail=str(getattr(live, "detail", "")),
            state=str(getattr(live, "state", "")),
            messages=int(getattr(live, "messages", 0)),
            results=int(getattr(live, "results", 0)),
            quarantined=int(getattr(live, "quarantined", 0)),
        )
        for instrument_id, live in table.copy().items()
    }


def gateway_status(gateway: object | None) -> dict[str, Any] | None:
    """``gateway.status()`` as a plain dict, or None when no gateway runs in this process."""
    status = getattr(gateway, "status", None)
    if gateway is None or not callable(status):
        return None
    return {str(key): value for key, value in status().items()}


def merge_instruments(
    config: Config, rows: Sequence[Mapping[str, Any]], live: Mapping[str, LiveInstrument]
) -> list[dict[str, Any]]:
    """Configured instruments first (config order), then any the store knows from before.

    The store gives last-message times and counts; the running gateway, when there is one,
    gives the current connection state (fresher than the store's).
    """
    configured = {inst.id: inst for inst in config.instruments}
    stored = {str(row["id"]): row for row in rows}
    order = [*configured, *(i for i in stored if i not in configured)]
    merged = []
    for instrument_id in order:
        row = stored.get(instrument_id, {})
        conf = configured.get(instrument_id)
        item: dict[str, Any] = {
            "id": instrument_id,
            "name": conf.name if conf else "",
            "location": conf.location if conf else "",
            "configured": conf is not None,
            "enabled": conf.enabled if conf else False,
            "driver": row.get("driver") or (conf.driver if conf else ""),
            "url": row.get("url") or (conf.url if conf else ""),
            "connected": bool(row.get("connected", False)),
            "state": str(row.get("state", "")),
            "detail": str(row.get("detail", "")),
            "last_seen_at": row.get("last_seen_at"),
            "last_message_at": row.get("last_message_at"),
            "messages": int(row.get("messages", 0)),
            "live": None,
        }
        now = live.get(instrument_id)
        if now is not None:
            item["connected"] = now.connected
            if now.state or now.detail:  # the gateway has heard from the session
                item["state"], item["detail"] = now.state, now.detail or item["detail"]
            item["live"] = {
                "messages": now.messages,
                "results": now.results,
                "quarantined": now.quarantined,
            }
        merged.append(item)
    return merged


# --- the per-app context ------------------------------------------------------------------------


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


class WebContext:
    """What every handler needs: config, store, the optional running gateway, templates."""

    def __init__(self, config: Config, engine: Engine, gateway: object | None) -> None:
        self.config = config
        self.engine = engine
        self.gateway = gateway
        self.zone = ZoneInfo(config.site.timezone)
        self.templates = Jinja2Templates(env=_environment())
        self.title = config.site.title or config.site.name

    def read(self, job: Callable[[Connection], T]) -> T:
        """Run read queries on one connection (blocking: call through ``query``).

        A plain connection is a reader: on SQLite it begins deferred, so in WAL mode it sees
        one snapshot and never waits for (or holds up) the gateway's writer.
        """
        with self.engine.connect() as conn:
            return job(conn)

    async def query(self, job: Callable[[Connection], T]) -> T:
        """Run ``job`` on a worker thread so the event loop never waits for the database."""
        return await run_in_threadpool(self.read, job)

    def language(self, request: Request) -> str:
        return i18n.choose_language(
            request.query_params.get("lang"),
            request.cookies.get(LANG_COOKIE),
            self.config.site.language,
        )

    def translator(self, request: Request) -> i18n.Translator:
        return i18n.Translator(self.language(request), self.zone)

    def page(
        self,
        request: Request,
        template: str,
        context: Mapping[str, Any],
        *,
        status_code: int = 200,
    ) -> HTMLResponse:
        """Render ``template`` with the shared layout context; remember a chosen language."""
        tr = self.translator(request)
        path = request.url.path
        others = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
        full: dict[str, Any] = {
            "lang": tr.lang,
            "t": tr.t,
            "label": tr.label,
            "action": tr.action,
            "hold_why": tr.hold_why,
            "hold_todo": tr.hold_todo,
            "hold_technical": hold_technical,
            "quarantine_reason": tr.quarantine_reason,
            "field": tr.field,
            "connection": tr.connection,
            "connection_technical": connection_technical,
            "lis_text": tr.lis,
            "technical": without_bytes,
            "when": tr.when,
            "ago": tr.ago,
            "now": datetime.now(UTC),
            "clock": tr.clock,
            "site_title": self.title,
            "zone": self.zone.key,
            "refresh_seconds": REFRESH_SECONDS,
            "viewer": getattr(request.state, "viewer", ANONYMOUS),
            "nav": [{"path": n.path, "key": n.key, "active": n.active(path)} for n in NAV],
            "lang_links": [
                {
                    "code": code,
                    "url": path + "?" + urlencode([*others, ("lang", code)]),
                    "current": code == tr.lang,
                }
                for code in i18n.LANGUAGES
            ],
            **context,
        }
        response = self.templates.TemplateResponse(request, template, full, status_code=status_code)
        if request.query_params.get("lang") in i18n.LANGUAGES:
            response.set_cookie(
                LANG_COOKIE, tr.lang, max_age=365 * 24 * 3600, httponly=True, samesite="lax"
            )
        return response

    def error_page(
        self, request: Request, status_code: int, message: str, technical: str = ""
    ) -> HTMLResponse:
        return self.page(
            request,
            "error.html",
            {"status": status_code, "message": message, "technical": technical},
            status_code=status_code,
        )


def web_context(request: Request) -> WebContext:
    web = request.app.state.web
    assert isinstance(web, WebContext)
    return web


Web = Annotated[WebContext, Depends(web_context)]


# --- pages -------------------------------------------------------------------------------------

pages = APIRouter(include_in_schema=False, dependencies=[Authenticated])


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


def _dashboard_reads(conn: Connection) -> dict[str, Any]:
    return {
        "summary": queries.summary(conn),
        "instrument_rows": queries.list_instruments(conn),
        "results": [scrub_result(r) for r in queries.list_results(conn, limit=RECENT_RESULTS)],
        "outbox": scrub_outbox(queries.outbox_status(conn, limit=RECENT_OUTBOX)),
    }


@pages.get("/", response_class=HTMLResponse)
async def dashboard(request: Request, web: Web) -> HTMLResponse:
    live = live_snapshot(web.gateway)
    status = gateway_status(web.gateway)
    data = await web.query(_dashboard_reads)
    summary: queries.Summary = data["summary"]
    tr = web.translator(request)
    return web.page(
        request,
        "dashboard.html",
        {
            "instruments": merge_instruments(web.config, data["instrument_rows"], live),
            "counters": _counters(summary, tr),
            "held_by_reason": sorted(
                summary.held_by_reason.items(), key=lambda kv: (-kv[1], kv[0])
            ),
            "results": data["results"],
            "outbox": data["outbox"],
            "lis": None if status is None else status.get("lis"),
            "lis_configured": web.config.lis is not None,
        },
    )


def _instrument_choices(config: Config, conn: Connection) -> list[str]:
    known = [inst.id for inst in config.instruments]
    return known + sorted(
        str(r["id"]) for r in queries.list_instruments(conn) if r["id"] not in known
    )


@pages.get("/results", response_class=HTMLResponse)
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


@pages.get("/results/{result_id}", response_class=HTMLResponse)
async def result_page(request: Request, web: Web, result_id: int) -> HTMLResponse:
    found = await web.query(lambda conn: queries.get_result(conn, result_id))
    if found is None:
        tr = web.translator(request)
        return web.error_page(request, 404, tr.t("error.result_not_found", id=result_id))
    return web.page(request, "result.html", {"result": scrub_result(found)})


@pages.get("/outbox", response_class=HTMLResponse)
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


@pages.get("/quarantine", response_class=HTMLResponse)
async def quarantine_page(
    request: Request, web: Web, state: Annotated[QuarantineState, Query()] = ""
) -> HTMLResponse:
    rows = await web.query(
        lambda conn: queries.list_quarantine(conn, state=state or None, limit=PAGE_LIMIT)
    )
    return web.page(request, "quarantine.html", {"rows": scrub_quarantine(rows)})


def _read_orders(state: OrderState, limit: int) -> Callable[[Connection], list[dict[str, Any]]]:
    """The worklist query for one state filter ("all": every state)."""
    return lambda conn: list_orders(conn, state=None if state == "all" else state, limit=limit)


@pages.get("/orders", response_class=HTMLResponse)
async def orders_page(
    request: Request, web: Web, state: Annotated[OrderState, Query()] = "open"
) -> HTMLResponse:
    """The worklist, read-only: orders are placed by the LIS or with `trygg orders add`."""
    rows = await web.query(_read_orders(state, PAGE_LIMIT))
    return web.page(request, "orders.html", {"rows": rows, "state": state, "states": ORDER_STATES})


@pages.get("/deviations", response_class=HTMLResponse)
async def deviations_page(request: Request, web: Web) -> HTMLResponse:
    rows = await web.query(lambda conn: queries.list_deviations(conn, limit=PAGE_LIMIT))
    return web.page(request, "deviations.html", {"rows": scrub_deviations(rows)})


@pages.get("/docs", response_class=HTMLResponse)
async def docs_page(request: Request, web: Web) -> HTMLResponse:
    """The API described from the OpenAPI schema, rendered here (Swagger UI needs a CDN)."""
    schema = request.app.openapi()
    endpoints = []
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            endpoints.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "parameters": [
                        {
                            "name": p["name"],
                            "where": p.get("in", ""),
                            "required": bool(p.get("required", False)),
                        }
                        for p in operation.get("parameters", [])
                    ],
                }
            )
    return web.page(request, "docs.html", {"endpoints": endpoints})


# --- JSON API ----------------------------------------------------------------------------------

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
    web: Web,
    state: Annotated[State | Literal[""], Query(description="only results in this state")] = "",
    instrument: Annotated[str, Query(description="only results from this instrument")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Each result with its holds; patient IDs are masked."""
    found = await web.query(
        lambda conn: queries.list_results(
            conn, state=state or None, instrument=instrument or None, limit=limit
        )
    )
    return [scrub_result(r) for r in found]


@api.get("/results/{result_id}", summary="One result with its holds and LIS messages")
async def api_result(web: Web, result_id: int) -> dict[str, Any]:
    found = await web.query(lambda conn: queries.get_result(conn, result_id))
    if found is None:
        raise HTTPException(status_code=404, detail=f"result {result_id} not found")
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


@api.get("/orders", summary="The worklist: order lines, newest first")
async def api_orders(
    web: Web,
    state: Annotated[OrderState, Query(description="open, cancelled or all")] = "open",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """One line per specimen and test code; "resulted" says whether a result with the same
    specimen and test has arrived. Patient IDs are masked."""
    return await web.query(_read_orders(state, limit))


@api.get("/deviations", summary="Recorded deviations (avvik), newest first")
async def api_deviations(
    web: Web, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[dict[str, Any]]:
    return scrub_deviations(
        await web.query(lambda conn: queries.list_deviations(conn, limit=limit))
    )


health = APIRouter(prefix="/api", tags=["health"])


def _ping(conn: Connection) -> None:
    conn.execute(sql_text("SELECT 1"))


@health.get("/health", summary="Liveness and database check (no login needed)")
async def api_health(web: Web) -> JSONResponse:
    """Status "ok" when the database answers; otherwise 503 with status "error"."""
    body: dict[str, Any] = {
        "status": "ok",
        "site": web.config.site.name,
        "version": __version__,
        "time": datetime.now(UTC).isoformat(),
        "database": "ok",
        "gateway": gateway_status(web.gateway),
    }
    try:
        await web.query(_ping)
    except Exception as exc:
        body.update(status="error", database=f"{exc.__class__.__name__}")
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)


# --- errors, headers, the app ------------------------------------------------------------------


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path == "/api" or path == "/openapi.json"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if _wants_json(request) or exc.status_code < 400:
        return await http_exception_handler(request, exc)
    web = web_context(request)
    tr = web.translator(request)
    if exc.status_code == 404:
        return web.error_page(request, 404, tr.t("error.not_found"))
    # the framework's reason ("Method Not Allowed") is English: one click away, not the message
    return web.error_page(request, exc.status_code, tr.t("error.other"), str(exc.detail))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if _wants_json(request):
        return await request_validation_exception_handler(request, exc)
    web = web_context(request)
    return web.error_page(request, 422, web.translator(request).t("error.bad_request"))


class SecurityHeaders:
    """ASGI middleware: CSP and friends on every response; no caching of live pages."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                if not static:
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(config: Config, engine: Engine, *, gateway: object | None = None) -> FastAPI:
    """The dashboard and API for ``config`` over ``engine``; ``gateway`` adds live state.

    Swagger UI and ReDoc are off (they load from a CDN); ``/docs`` is our own offline page
    built from ``/openapi.json``.
    """
    app = FastAPI(
        title=f"Trygg ({config.site.name})",
        version=__version__,
        description="Read-only JSON API of the Trygg instrument gateway.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.web = WebContext(config, engine, gateway)
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(health)
    app.include_router(api)
    app.include_router(pages)
    return app


__all__ = ["NAV", "NavItem", "Viewer", "create_app", "current_viewer", "scrub"]
