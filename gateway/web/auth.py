"""Who is looking, and may they: the session cookie, the route guard, roles and CSRF.

Every route of the app passes ``guard`` (an app-wide dependency): it looks the route's path
template up in ``access.ROUTE_ROLES`` (deny by default), resolves the viewer from the session
cookie for any route that is not public, checks the roles, and checks the CSRF token of every
POST/PUT/PATCH/DELETE (a form field ``csrf`` or the header ``X-CSRF-Token``, compared in
constant time; public forms, i.e. sign-in, against a pre-session cookie). ``install`` adds the
answers (a page: 303 to ``/signin?next=...``, or a 403 page; /api: 401 or 403 JSON) and makes
the app refuse to start when a route is missing from the table or escapes the guard.

The cookie ``trygg_session`` (HttpOnly, SameSite=Strict, Path=/, Secure over https) holds a
random token; the store keeps its sha256 (``gateway.store.sessions``). A request counts as the
person's activity (slides the idle expiry) unless it is the page's own periodic refresh
(header ``X-Trygg-Refresh``): a dashboard left open does not keep a session alive.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount

from gateway.catalogue import FALLBACK_LANGUAGE, text
from gateway.people.roles import Role
from gateway.store import sessions
from gateway.store.sessions import EndReason
from gateway.web import access
from gateway.web.context import web_context
from gateway.web.forms import form_fields
from gateway.web.middleware import wants_json
from gateway.web.viewer import ANONYMOUS, Viewer

__all__ = [
    "ANONYMOUS",
    "Authenticated",
    "Refused",
    "SignInRequired",
    "Viewer",
    "current_viewer",
    "guard",
    "install",
    "optional_viewer",
    "require",
]

SESSION_COOKIE: Final = "trygg_session"
#: the sign-in form's CSRF token before any session exists (login CSRF)
SIGNIN_COOKIE: Final = "trygg_signin"
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "x-csrf-token"
#: sent by static/refresh.js: the page refreshing itself is not the person's activity
REFRESH_HEADER: Final = "x-trygg-refresh"
UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: a cookie longer than any token this app issues is not looked up
MAX_TOKEN_CHARS: Final = 128


class SignInRequired(Exception):
    """No valid session: a page redirects to the sign-in page, /api answers 401."""

    def __init__(self, ended: EndReason | None = None, *, stale_cookie: bool = False) -> None:
        super().__init__(ended.value if ended else "no session")
        self.ended = ended
        self.stale_cookie = stale_cookie or ended is not None


class Refused(Exception):
    """Signed in, but not allowed: ``why`` is ``role`` (or ``unlisted``) or ``csrf``; 403."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def is_refresh(request: Request) -> bool:
    return request.headers.get(REFRESH_HEADER) == "1"


async def _resume(request: Request) -> Viewer:
    """The viewer of the request's session cookie; ends an expired session (SignInRequired)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        raise SignInRequired()
    if len(token) > MAX_TOKEN_CHARS:
        raise SignInRequired(stale_cookie=True)
    web = web_context(request)
    policy = web.session_policy
    session = await web.query(functools.partial(sessions.lookup, token=token))
    if session is None:
        raise SignInRequired(stale_cookie=True)
    if sessions.verdict(session, web.now(), policy) is not None:
        ended = await web.write(
            functools.partial(sessions.end_expired, session=session, policy=policy)
        )
        raise SignInRequired(ended or EndReason.IDLE)
    if not is_refresh(request) and sessions.needs_touch(session, web.now()):
        await web.write(functools.partial(sessions.touch, session=session, policy=policy))
    return Viewer(
        person=session.person,
        name=session.name,
        roles=session.roles,
        authenticated=True,
        csrf=session.csrf_token,
        session_id=session.id,
    )


async def current_viewer(request: Request) -> Viewer:
    """The signed-in viewer of this request, or SignInRequired (once per request: cached).

    Templates see it as ``viewer``; ``request.state.viewer`` holds it for the layout.
    """
    cached = getattr(request.state, "viewer", None)
    if isinstance(cached, Viewer) and cached.authenticated:
        return cached
    failed: SignInRequired | None = getattr(request.state, "signin_failed", None)
    if failed is not None:
        raise failed
    try:
        viewer = await _resume(request)
    except SignInRequired as exc:
        request.state.signin_failed = exc
        request.state.viewer = ANONYMOUS
        raise
    request.state.viewer = viewer
    return viewer


async def optional_viewer(request: Request) -> Viewer:
    """The signed-in viewer, or ANONYMOUS (for public pages that greet a signed-in person)."""
    try:
        return await current_viewer(request)
    except SignInRequired:
        return ANONYMOUS


async def check_csrf(request: Request, expected: str) -> None:
    """Refused("csrf") unless the request carries ``expected`` (header or form field)."""
    submitted = request.headers.get(CSRF_HEADER, "")
    if not submitted:
        submitted = (await form_fields(request)).get(CSRF_FIELD, "")
    if not (
        expected
        and submitted
        and hmac.compare_digest(submitted.encode("utf-8"), expected.encode("utf-8"))
    ):
        raise Refused("csrf")


async def guard(request: Request) -> None:
    """The app-wide dependency: the route's rule from the table, the session, roles, CSRF."""
    route = request.scope.get("route")
    template = getattr(route, "path", "")
    rule = access.rule_for(template)
    if rule is access.PUBLIC:
        if request.method in UNSAFE_METHODS:
            await check_csrf(request, request.cookies.get(SIGNIN_COOKIE, ""))
        return
    viewer = await current_viewer(request)
    if rule is None:
        raise Refused("unlisted")  # deny by default (install refuses such an app anyway)
    if not access.permits(rule, authenticated=True, roles=viewer.roles):
        raise Refused("role")
    if request.method in UNSAFE_METHODS:
        await check_csrf(request, viewer.csrf)


def require(*roles: Role) -> Callable[[Request], Awaitable[Viewer]]:
    """A dependency giving the signed-in viewer, refused (403) unless they hold one of
    ``roles`` (none given: any signed-in person). Use: ``Depends(require(Role.VERIFIER))``.

    The route table still decides who reaches the route at all; this narrows a handler (or
    one of its parameters) further.
    """
    wanted = frozenset(roles)

    async def dependency(request: Request) -> Viewer:
        viewer = await current_viewer(request)
        if wanted and wanted.isdisjoint(viewer.roles):
            raise Refused("role")
        return viewer

    return dependency


Authenticated = Depends(current_viewer)
"""A parameter's default for a handler that needs the viewer: ``Annotated[Viewer,
Authenticated]``."""


# --- cookies --------------------------------------------------------------------------------


def set_cookie(request: Request, response: Response, name: str, value: str, path: str) -> None:
    """A cookie as this app sets them: HttpOnly, SameSite=Strict, Secure over https; no
    max-age (gone with the browser; the server decides how long a session lasts)."""
    response.set_cookie(
        name,
        value,
        path=path,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    set_cookie(request, response, SESSION_COOKIE, token, "/")


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


# --- answers --------------------------------------------------------------------------------


def signin_url(request: Request, ended: EndReason | None = None) -> str:
    """``/signin`` with the page to come back to (GET only: a form is posted anew)."""
    params: list[tuple[str, str]] = []
    if request.method == "GET":
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        params.append(("next", target))
    if ended is not None:
        params.append(("ended", ended.value))
    return "/signin" + ("?" + urlencode(params) if params else "")


async def signin_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    response: Response
    if wants_json(request):
        response = JSONResponse(
            {"detail": text(FALLBACK_LANGUAGE, "auth.api_signin")}, status_code=401
        )
    else:
        response = RedirectResponse(signin_url(request, exc.ended), status_code=303)
    if exc.stale_cookie:
        clear_session_cookie(request, response)
    return response


async def refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    key = "auth.csrf" if exc.why == "csrf" else "auth.forbidden"
    if wants_json(request):
        return JSONResponse({"detail": text(FALLBACK_LANGUAGE, key)}, status_code=403)
    web = web_context(request)
    return web.error_page(request, 403, web.translator(request).t(key))


class RouteTableError(RuntimeError):
    """The app has a route the access table does not name, or one that escapes the guard."""


def route_templates(app: FastAPI) -> list[tuple[str, frozenset[str]]]:
    """Every route of ``app`` as (path template, methods); the static mount has no methods."""
    found = []
    for context in iter_route_contexts(app.routes):
        methods = context.methods if isinstance(context.original_route, APIRoute) else None
        found.append((str(context.path), frozenset(methods or ())))
    return found


def check_routes(app: FastAPI) -> None:
    """Refuse an app with a route outside the table or outside the guard; or a stale line.

    The guard reads the matched route's own path (``scope["route"]``): a router included
    with a ``prefix=`` would make that differ from the URL's template, so such an include is
    refused too (put the prefix on the ``APIRouter`` itself, as ``api`` does).
    """
    templates: list[str] = []
    escaping: list[str] = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = str(context.path)
        templates.append(path)
        if isinstance(route, APIRoute):
            dependencies = getattr(context, "dependencies", route.dependencies)
            if route.path != path or not any(d.dependency is guard for d in dependencies):
                escaping.append(path)
        elif not (isinstance(route, Mount) and path == access.STATIC):
            escaping.append(path)
    problems = []
    if missing := access.unlisted(templates):
        problems.append(f"routes not in access.ROUTE_ROLES: {', '.join(missing)}")
    if escaping:
        problems.append(f"routes the guard does not see: {', '.join(sorted(escaping))}")
    if old := access.stale(templates):
        problems.append(f"access.ROUTE_ROLES lines without a route: {', '.join(old)}")
    if problems:
        raise RouteTableError("; ".join(problems))


def install(app: FastAPI) -> None:
    """The answers to SignInRequired and Refused, and the route table check (call last)."""
    app.add_exception_handler(SignInRequired, signin_required)
    app.add_exception_handler(Refused, refused)
    check_routes(app)
