"""The web app factory: assembles the context, middleware, error handlers and routers.

Pages (Jinja2) live in ``routes/`` by page group, the JSON API in ``routes/api.py``; personal
data masking in ``gateway.privacy``; headers and error pages in ``middleware.py``; the
Host-header guard in ``hosts.py``; templates, layout and language in ``context.py``; the
authentication hook in ``auth.py`` (``current_viewer``).
How to add a page: see ``gateway.web.routes``.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from gateway import __version__
from gateway.config import Config
from gateway.web import middleware
from gateway.web.context import HERE, WebContext
from gateway.web.hosts import HostGuard, allowed_hosts
from gateway.web.routes import (
    dashboard,
    deviations,
    docs,
    orders,
    outbox,
    quarantine,
    results,
)
from gateway.web.routes.api import api, health


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
    middleware.install(app)
    # added last, so it runs first: a request for another host name reaches no page
    app.add_middleware(HostGuard, allowed=allowed_hosts(config.web))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(health)
    app.include_router(api)
    for page_group in (dashboard, results, orders, outbox, quarantine, deviations, docs):
        app.include_router(page_group.router)
    return app


__all__ = ["create_app"]
