"""What the people pages share: a signed interval as words, and the signature meanings the
catalogues have texts for (the rules' context is ``WebContext.rules``)."""

from __future__ import annotations

from typing import Final

from gateway.catalogue import text
from gateway.people.roles import HoldAction

#: ``signatures.meaning`` codes with a text ``sig.meaning.<code>`` (``supersede``: the system
#: replaced a held result by a certified re-run)
SIGNATURE_MEANINGS: Final = frozenset({*(a.value for a in HoldAction), "supersede"})


def duration(lang: str, seconds: int) -> str:
    """A time between two readings as words: "45 s", "12 min", "3 t 5 min"."""
    seconds = max(0, seconds)
    if seconds < 60:
        return text(lang, "duration.seconds", n=seconds)
    minutes = seconds // 60
    if minutes < 60:
        return text(lang, "duration.minutes", n=minutes)
    return text(lang, "duration.hours", h=minutes // 60, m=minutes % 60)
