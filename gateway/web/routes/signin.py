"""Signing in and out: the form, the password check with lockout, a new session each time.

Session fixation: a session cookie the browser presents at sign-in is ended on the server and
a new random token is issued, whatever happens next. The wrong-person and wrong-password
answers are the same text; a locked account says until when (in the site's time zone), an
account without a password yet says who can set one. ``next`` goes only to a local path.
"""

from __future__ import annotations

import functools
import secrets
from typing import Final
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from gateway.store import sessions
from gateway.store.sessions import EndReason
from gateway.store.signin import Attempt, SignIn, authenticate
from gateway.web.auth import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    clear_session_cookie,
    current_viewer,
    optional_viewer,
    set_cookie,
    set_session_cookie,
)
from gateway.web.context import Web, landing
from gateway.web.forms import form_fields
from gateway.web.viewer import Viewer

router = APIRouter(include_in_schema=False)

PERSON_CHARS: Final = 64
NEXT_CHARS: Final = 2000
#: a password longer than this is not hashed (argon2 of megabytes is a cheap denial of service)
PASSWORD_CHARS: Final = 1024
_NOT_BACK_TO: Final = ("/signin", "/signout")


def safe_next(value: str | None) -> str:
    """``value`` if it is a path on this site (not ``//host``, no scheme, no backslash, no
    control character, not the sign-in pages themselves), else ""."""
    if not value or len(value) > NEXT_CHARS or not value.startswith("/"):
        return ""
    if (
        value.startswith("//")
        or "\\" in value
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        return ""
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return ""
    if any(parts.path == p or parts.path.startswith(p + "/") for p in _NOT_BACK_TO):
        return ""
    return value


def _form_token(request: Request) -> str:
    """The sign-in form's CSRF token: the browser's pre-session cookie if it has a sound one
    (several tabs share it), else a new one."""
    have = request.cookies.get(SIGNIN_COOKIE, "")
    if 32 <= len(have) <= 64 and have.replace("-", "").replace("_", "").isalnum():
        return have
    return secrets.token_urlsafe(32)


def _form(
    request: Request,
    web: Web,
    viewer: Viewer,
    *,
    next_path: str,
    person: str = "",
    error: str = "",
    notice: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    token = _form_token(request)
    response = web.page(
        request,
        "signin.html",
        {
            "next": next_path,
            "person": person,
            "error": error,
            "notice": notice,
            "form_csrf": token,
            "signed_in": viewer if viewer.authenticated else None,
        },
        status_code=status_code,
        refresh=False,
    )
    set_cookie(request, response, SIGNIN_COOKIE, token, "/signin")
    return response


def _ended_notice(web: Web, request: Request, ended: str) -> str:
    tr = web.translator(request)
    if ended == EndReason.IDLE:
        return tr.t("signin.ended_idle", minutes=web.config.people.session_idle_minutes)
    if ended == EndReason.MAX:
        return tr.t("signin.ended_max", hours=web.config.people.session_max_hours)
    if ended:
        return tr.t("signin.ended_other")
    return ""


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(
    request: Request, web: Web, next: str = "", ended: str = "", signed_out: str = ""
) -> HTMLResponse:
    viewer = await optional_viewer(request)
    notice = _ended_notice(web, request, ended)
    if signed_out and not notice:
        notice = web.translator(request).t("signin.signed_out")
    return _form(request, web, viewer, next_path=safe_next(next), notice=notice)


def _failure_text(web: Web, request: Request, attempt: Attempt) -> str:
    tr = web.translator(request)
    if attempt.outcome is SignIn.LOCKED:
        return tr.t("signin.locked", until=tr.when(attempt.locked_until), zone=web.zone.key)
    if attempt.outcome is SignIn.NO_PASSWORD:
        return tr.t("signin.no_password")
    # a wrong password, an unknown person and a disabled account read the same: the form does
    # not tell a guesser which person IDs exist
    return tr.t("signin.wrong")


@router.post("/signin", response_class=HTMLResponse)
async def signin(request: Request, web: Web) -> Response:
    fields = await form_fields(request)
    person = fields.get("person", "").strip()[:PERSON_CHARS]
    password = fields.get("password", "")
    next_path = safe_next(fields.get("next"))
    presented = request.cookies.get(SESSION_COOKIE, "")
    if presented:
        # session fixation: whatever session this browser had ends here, signed in or not
        await web.write(
            functools.partial(sessions.end_by_token, token=presented, reason=EndReason.REPLACED)
        )
    if not person or not password or len(password) > PASSWORD_CHARS:
        response: Response = _form(
            request,
            web,
            Viewer(),
            next_path=next_path,
            person=person,
            error=web.translator(request).t("signin.wrong"),
            status_code=401,
        )
    else:
        attempt = await run_in_threadpool(
            functools.partial(
                authenticate,
                web.engine,
                person,
                password,
                now=web.now(),
                policy=web.signin_policy,
                purpose="sign_in",
            )
        )
        if attempt.ok:
            client = request.client.host if request.client else ""
            started = await web.write(
                functools.partial(
                    sessions.start, person=person, policy=web.session_policy, client=client
                )
            )
            viewer = Viewer(
                person=person,
                name=started.session.name,
                roles=started.session.roles,
                authenticated=True,
            )
            response = RedirectResponse(next_path or landing(viewer), status_code=303)
            set_session_cookie(request, response, started.token)
            response.delete_cookie(SIGNIN_COOKIE, path="/signin", httponly=True, samesite="strict")
            return response
        response = _form(
            request,
            web,
            Viewer(),
            next_path=next_path,
            person=person,
            error=_failure_text(web, request, attempt),
            status_code=401,
        )
    if presented:
        clear_session_cookie(request, response)
    return response


@router.post("/signout")
async def signout(request: Request, web: Web) -> Response:
    viewer = await current_viewer(request)
    if viewer.session_id is not None:
        await web.write(
            functools.partial(
                sessions.end, session_id=viewer.session_id, reason=EndReason.SIGNED_OUT
            )
        )
    response = RedirectResponse("/signin?signed_out=1", status_code=303)
    clear_session_cookie(request, response)
    return response
