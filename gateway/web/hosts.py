"""The Host-header guard: the pages answer only to the names this gateway is known by.

Without it, a web page elsewhere can make its own host name resolve to 127.0.0.1 (DNS
rebinding) and read results through the visitor's browser: the browser thinks it talks to
``evil.example.com``, so the same-origin policy does not stop it, but the Host header says so.
"""

from __future__ import annotations

import socket
from typing import Final

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.config import WILDCARD_HOSTS, WebConfig, is_loopback_host
from gateway.web.context import web_context
from gateway.web.middleware import wants_json

#: names of this PC itself, allowed whenever the pages listen on loopback or every address
LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})
#: how much of a refused Host header the error page repeats
SHOWN_HOST_CHARS: Final = 80


def allowed_hosts(web: WebConfig, *, hostname: str | None = None) -> frozenset[str]:
    """The host names (lower case, no port, IPv6 without brackets) the pages answer to."""
    listen_host = _bare(web.host)
    names = {_bare(name) for name in web.allowed_hosts}
    if listen_host in WILDCARD_HOSTS:
        names |= LOOPBACK_NAMES
        names.add(_bare(hostname if hostname is not None else socket.gethostname()))
    else:
        names.add(listen_host)
        if is_loopback_host(listen_host):
            names |= LOOPBACK_NAMES
    return frozenset(name for name in names if name)


def host_name(header: str) -> str:
    """The name part of a Host header: ``[::1]:8470`` -> ``::1``, ``Lab.PC.:80`` -> ``lab.pc``."""
    header = header.strip()
    if header.startswith("["):
        end = header.find("]")
        return _bare(header[1:end]) if end > 0 else ""
    name, sep, port = header.rpartition(":")
    if not sep or not port.isdigit():
        name = header
    return _bare(name)


def _bare(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


class HostGuard:
    """ASGI middleware: a request whose Host header is not an allowed name gets 400."""

    def __init__(self, app: ASGIApp, *, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = ""
        for key, value in scope.get("headers", ()):
            if key == b"host":
                header = value.decode("latin-1")
                break
        if host_name(header) in self.allowed:
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = _refusal(Request(scope), header[:SHOWN_HOST_CHARS])
        await response(scope, receive, send)


def _refusal(request: Request, shown_host: str) -> Response:
    web = web_context(request)
    tr = web.translator(request)
    message = tr.t("error.bad_host", host=shown_host or "-", listen=web.config.web.listen)
    if wants_json(request):
        return JSONResponse({"detail": message}, status_code=400)
    return web.error_page(request, 400, message)
