"""Security headers on every response, and error handlers: HTML pages for people, JSON for /api."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.catalogue import FALLBACK_LANGUAGE, text
from gateway.errors import StoreError
from gateway.store.health import database_error_types, db_error_text
from gateway.web.context import web_context
from gateway.web.live import store_health_of

log = logging.getLogger(__name__)

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


def wants_json(request: Request) -> bool:
    """Whether the answer to ``request`` is for a script (the API), not a person (a page)."""
    path = request.url.path
    return path.startswith("/api/") or path == "/api" or path == "/openapi.json"


async def http_error(request: Request, exc: Exception) -> Response:
    """A 4xx/5xx: FastAPI's JSON body under /api, our error page in the reader's language."""
    assert isinstance(exc, StarletteHTTPException)
    if wants_json(request) or exc.status_code < 400:
        return await http_exception_handler(request, exc)
    web = web_context(request)
    tr = web.translator(request)
    if exc.status_code == 404:
        return web.error_page(request, 404, tr.t("error.not_found"))
    # the framework's reason ("Method Not Allowed") is English: one click away, not the message
    return web.error_page(request, exc.status_code, tr.t("error.other"), str(exc.detail))


async def validation_error(request: Request, exc: Exception) -> Response:
    """A bad query parameter: FastAPI's 422 JSON under /api, a short error page elsewhere."""
    assert isinstance(exc, RequestValidationError)
    if wants_json(request):
        return await request_validation_exception_handler(request, exc)
    web = web_context(request)
    return web.error_page(request, 422, web.translator(request).t("error.bad_request"))


async def store_error(request: Request, exc: Exception) -> Response:
    """The store could not be read: 503 with a page that says so (JSON under /api), never a
    bare 500. A read that shows a broken store fails the gateway's store health too."""
    web = web_context(request)
    health = store_health_of(web.gateway)
    if health is not None:
        health.fail_from(exc, source="read")
    detail = db_error_text(exc)  # the driver's message: no statement, no parameters
    log.warning("%s %s: the store could not be read: %s", request.method, request.url.path, detail)
    if wants_json(request):
        return JSONResponse(
            {"detail": text(FALLBACK_LANGUAGE, "error.store_api", detail=detail)},
            status_code=503,
        )
    return web.error_page(request, 503, web.translator(request).t("error.store"), detail)


def install(app: FastAPI) -> None:
    """Add the headers middleware and the error handlers to ``app``."""
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    for error in (*database_error_types(), StoreError):
        app.add_exception_handler(error, store_error)
