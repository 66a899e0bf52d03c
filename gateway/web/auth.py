"""Who is looking: the ``Viewer`` and the one authentication hook every page and API route uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fastapi import Depends, Request


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
