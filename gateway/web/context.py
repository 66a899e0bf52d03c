"""The per-app context every handler gets: config, store reader, templates, layout and language."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jinja2
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool

from gateway.config import Config
from gateway.rules import context_from_config
from gateway.store.sessions import SessionPolicy
from gateway.store.signin import Policy
from gateway.store.writer import Tx, run_with_events
from gateway.texts import connection_technical, hold_technical, without_bytes
from gateway.web import access, i18n
from gateway.web.live import store_alarm
from gateway.web.viewer import ANONYMOUS, Viewer

T = TypeVar("T")

HERE: Final = Path(__file__).resolve().parent
REFRESH_SECONDS: Final = 5
LANG_COOKIE: Final = "trygg_lang"


@dataclass(frozen=True, slots=True)
class NavItem:
    """One entry of the top navigation: a path and the i18n key of its label."""

    path: str
    key: str

    def active(self, path: str) -> bool:
        return path == self.path or (self.path != "/" and path.startswith(self.path + "/"))


NAV: Final[tuple[NavItem, ...]] = (
    # first: where a person who works with results lands after sign-in (``landing``)
    NavItem("/my-work", "nav.my_work"),
    NavItem("/", "nav.dashboard"),
    NavItem("/results", "nav.results"),
    NavItem("/held", "nav.held"),
    NavItem("/verify", "nav.verify"),
    NavItem("/cosign", "nav.cosign"),
    NavItem("/entry", "nav.entry"),
    NavItem("/orders", "nav.orders"),
    NavItem("/outbox", "nav.outbox"),
    NavItem("/quarantine", "nav.quarantine"),
    NavItem("/deviations", "nav.deviations"),
    NavItem("/access-log", "nav.access_log"),
    # issue 11: after the access log, so that an admin still lands there (``landing``)
    NavItem("/qc", "nav.qc"),
    # pages-people
    NavItem("/people", "nav.people"),
    NavItem("/recert", "nav.recert"),
    NavItem("/my-certifications", "nav.my_certifications"),
    # issue 11: EQA (EKV)
    NavItem("/eqa", "nav.eqa"),
)


def may_open(viewer: Viewer, path: str) -> bool:
    """Whether ``viewer`` may open the page at ``path`` (a route template without
    parameters, as the navigation links are)."""
    return access.permits(
        access.rule_for(path), authenticated=viewer.authenticated, roles=viewer.roles
    )


def landing(viewer: Viewer) -> str:
    """Where a signed-in person starts: the first page of the navigation they may open."""
    for item in NAV:
        if may_open(viewer, item.path):
            return item.path
    return "/docs"


def utc_now() -> datetime:
    return datetime.now(UTC)


def template_environment() -> jinja2.Environment:
    """Jinja2 over ``templates/``: autoescaped, and a missing variable is an error, not ""."""
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
        self.templates = Jinja2Templates(env=template_environment())
        self.title = config.site.title or config.site.name
        #: the rules' context from the config (test mappings, drivers, zone), made once: the
        #: queues and the actions read the store's people facts themselves
        self.rules = context_from_config(config)
        people = config.people
        self.session_policy = SessionPolicy.of(
            people.session_idle_minutes, people.session_max_hours
        )
        self.signin_policy = Policy(
            people.login_attempts, timedelta(minutes=people.lockout_minutes)
        )
        #: the web's clock (sessions, sign-in, the access log); tests move it
        self.clock: Callable[[], datetime] = utc_now

    def now(self) -> datetime:
        return self.clock()

    def read(self, job: Callable[[Connection], T]) -> T:
        """Run store read functions on one connection (blocking: call through ``query``).

        A plain connection is a reader: on SQLite it begins deferred, so in WAL mode it sees
        one snapshot and never waits for (or holds up) the gateway's writer.
        """
        with self.engine.connect() as conn:
            return job(conn)

    async def query(self, job: Callable[[Connection], T]) -> T:
        """Run ``job`` on a worker thread so the event loop never waits for the database."""
        return await run_in_threadpool(self.read, job)

    async def write(self, job: Callable[[Tx], T]) -> T:
        """Run one store command (a function of ``Tx``, defined outside the web) in its own
        transaction on a worker thread, as the CLI's commands do beside a running gateway
        (the audit chain's head row serialises them with the gateway's writer). Its events
        (``Tx.event``) go out on the running gateway's bus after the commit, as the gateway's
        own do; without a gateway there is no bus."""
        result, events = await run_in_threadpool(run_with_events, self.engine, job, self.now())
        bus = getattr(self.gateway, "bus", None)
        if bus is not None:
            for kind, instrument, payload in events:
                bus.publish(kind, instrument, payload)  # on the loop: publish never blocks
        return result

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
        refresh: bool = True,
    ) -> HTMLResponse:
        """Render ``template`` with the shared layout context; remember a chosen language.

        ``refresh=False`` for a page with a form: the live part would replace what is typed.
        """
        tr = self.translator(request)
        path = request.url.path
        viewer = getattr(request.state, "viewer", ANONYMOUS)
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
            "now": self.now(),
            "clock": tr.clock,
            "site_title": self.title,
            "zone": self.zone.key,
            "refresh_seconds": REFRESH_SECONDS,
            "viewer": viewer,
            "csrf": viewer.csrf,
            "refresh": refresh,
            "store_alarm": store_alarm(self.gateway),
            "nav": [
                {"path": n.path, "key": n.key, "active": n.active(path)}
                for n in NAV
                if may_open(viewer, n.path)
            ],
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
