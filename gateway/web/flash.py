"""The one-time message a page shows after a form was sent and the browser was redirected.

After a signed action (or a manual entry) the handler answers 303 to the result's page, and
that page, opened next by the same session, shows what was done (``ActionOutcome.message`` in
the reader's language). The message waits here, in the web process, keyed by session and
page: not in the URL (a link could carry a forged "signed" text) nor in a cookie. It is
shown once; a restart forgets it, which costs only the sentence (the page shows the state).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from fastapi import Request

#: a message in the reader's language: ``lang -> text``
Message = Callable[[str], str]

#: messages kept at most (the oldest goes first): one per person between a post and its page
MAX_WAITING: Final = 500
_STATE_KEY: Final = "flash"


class Flash:
    """Messages waiting for (session id, path)."""

    def __init__(self, limit: int = MAX_WAITING) -> None:
        self._waiting: OrderedDict[tuple[int, str], Message] = OrderedDict()
        self._limit = limit

    def put(self, session_id: int | None, path: str, message: Message) -> None:
        if session_id is None:
            return
        key = (session_id, path)
        self._waiting.pop(key, None)
        self._waiting[key] = message
        while len(self._waiting) > self._limit:
            self._waiting.popitem(last=False)

    def take(self, session_id: int | None, path: str) -> Message | None:
        """The message waiting for this session's page, once."""
        if session_id is None:
            return None
        return self._waiting.pop((session_id, path), None)


def flash_of(request: Request) -> Flash:
    """The app's flash messages (made on first use)."""
    state = request.app.state
    found = getattr(state, _STATE_KEY, None)
    if not isinstance(found, Flash):
        found = Flash()
        setattr(state, _STATE_KEY, found)
    return found
