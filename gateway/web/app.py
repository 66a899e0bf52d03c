"""The web app factory: assembles the context, middleware, error handlers and routers.

Pages (Jinja2) live in ``routes/`` by page group, the JSON API in ``routes/api.py``; personal
data masking in ``gateway.privacy``; headers and error pages in ``middleware.py``; the
Host-header guard in ``hosts.py``; templates, layout and language in ``context.py``; sign-in,
sessions, roles and CSRF in ``auth.py`` (the ``guard`` every route passes) against the route
table in ``access.py`` (deny by default: the app refuses to start with a route not in it).
How to add a page: see ``gateway.web.routes``.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from gateway import __version__
from gateway.config import Config
from gateway.web import auth, middleware
from gateway.web.context import HERE, WebContext
from gateway.web.hosts import HostGuard, allowed_hosts
from gateway.web.routes import (
    access_log,
    actions,
    competence_import,
    dashboard,
    deviations,
    docs,
    entry,
    eqa,
    orders,
    outbox,
    people,
    qc,
    qc_chart,
    quarantine,
    recert,
    results,
    signin,
    work,
)
from gateway.web.routes.api import api, health
from gateway.web.uploads import PendingImports


def create_app(config: Config, engine: Engine, *, gateway: object | None = None) -> FastAPI:
    """The dashboard and API for ``config`` over ``engine``; ``gateway`` adds live state.

    Swagger UI and ReDoc are off (they load from a CDN); ``/docs`` is our own offline page
    built from the schema, which ``/openapi.json`` serves behind sign-in like every route.
    """
    app = FastAPI(
        title=f"Trygg ({config.site.name})",
        version=__version__,
        description=(
            "JSON API of the Trygg instrument gateway. Sign in at /signin first: the API "
            "reads the session cookie (401 without one, 403 without the role)."
        ),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(auth.guard)],
    )
    app.state.web = WebContext(config, engine, gateway)
    app.state.pending_imports = PendingImports()  # competence files between preview and apply
    middleware.install(app)
    # added last, so it runs first: a request for another host name reaches no page
    app.add_middleware(HostGuard, allowed=allowed_hosts(config.web))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(health)
    app.include_router(api)
    app.include_router(qc.api)
    page_groups = (
        signin,
        dashboard,
        results,
        orders,
        outbox,
        quarantine,
        deviations,
        access_log,
        # pages-people: the import's fixed paths before /people/{person}
        competence_import,
        people,
        recert,
        docs,
        # issue 10: pages-work
        work,
        actions,
        entry,
        # issue 11: the QC pages
        qc,
        # issue 11: charts
        qc_chart,
        # issue 11: EQA rounds, split samples, the Noklus exports
        eqa,
    )
    for page_group in page_groups:
        app.include_router(page_group.router)
    auth.install(app)  # last: it checks every route against the access table
    return app


__all__ = ["create_app"]
