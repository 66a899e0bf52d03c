"""What a page or API answer showed of patients' results, written to the access log (Normen).

Call ``log_results_shown`` before answering with results: the store writes one row per result
(``gateway.store.access``), and when it cannot, the page fails rather than show unlogged data.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import Request

from gateway.store import access
from gateway.web.context import WebContext
from gateway.web.viewer import ANONYMOUS, Viewer


def route_of(request: Request) -> str:
    """The route as logged: method and path (no query string)."""
    return f"{request.method} {request.url.path}"


async def log_results_shown(
    request: Request,
    web: WebContext,
    result_ids: Iterable[int],
    *,
    action: access.AccessAction = access.AccessAction.READ,
) -> None:
    """Log that this request's viewer was shown ``result_ids`` (a refresh logs nothing new)."""
    viewer: Viewer = getattr(request.state, "viewer", ANONYMOUS)
    ids = list(result_ids)
    if not ids:
        return
    await web.write(
        functools.partial(
            access.log_results_shown,
            person=viewer.person,
            route=route_of(request),
            result_ids=ids,
            action=action,
        )
    )


def ids_of(found: Iterable[Mapping[str, Any]]) -> list[int]:
    """The result ids of result dicts (``queries.result_dict``)."""
    return [int(r["id"]) for r in found]
