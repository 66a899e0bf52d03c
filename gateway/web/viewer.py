"""Who is looking: the ``Viewer`` a request's session gives (``auth.current_viewer`` makes it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from gateway.people.roles import Role


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person behind a request, or ``ANONYMOUS``.

    ``roles`` are the person's roles as the store has them now (a change applies at the next
    request); ``csrf`` is the session's CSRF token (every form carries it as the field
    ``csrf``); ``session_id`` the ``web_sessions`` row.
    """

    person: str = ""
    name: str = ""
    roles: frozenset[Role] = field(default_factory=frozenset)
    authenticated: bool = False
    csrf: str = ""
    session_id: int | None = None

    def has(self, *roles: Role) -> bool:
        """Whether the viewer holds any of ``roles``."""
        return self.authenticated and not self.roles.isdisjoint(roles)

    @property
    def actor(self) -> str:
        """Who acted, for audit rows: "web:<person>"."""
        return f"web:{self.person or 'anonymous'}"


ANONYMOUS: Final = Viewer()
