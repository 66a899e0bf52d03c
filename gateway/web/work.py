"""What the people pages share: the rules' context from the config, a signed interval as
words, and the signature meanings the catalogues have texts for."""

from __future__ import annotations

from typing import Final

from gateway.catalogue import text
from gateway.config import Config
from gateway.people.roles import HoldAction
from gateway.rules import RuleContext, context_from_config

#: ``signatures.meaning`` codes with a text ``sig.meaning.<code>`` (``supersede``: the system
#: replaced a held result by a certified re-run)
SIGNATURE_MEANINGS: Final = frozenset({*(a.value for a in HoldAction), "supersede"})

_contexts: dict[int, tuple[Config, RuleContext]] = {}


def rule_context(config: Config) -> RuleContext:
    """The rule context of ``config`` (test mappings, drivers, zone; the queues and actions
    read the store's people themselves), made once per config."""
    cached = _contexts.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]
    context = context_from_config(config)
    if len(_contexts) >= 8:  # one config per app; tests make many
        _contexts.clear()
    _contexts[id(config)] = (config, context)
    return context


def duration(lang: str, seconds: int) -> str:
    """A time between two readings as words: "45 s", "12 min", "3 t 5 min"."""
    seconds = max(0, seconds)
    if seconds < 60:
        return text(lang, "duration.seconds", n=seconds)
    minutes = seconds // 60
    if minutes < 60:
        return text(lang, "duration.minutes", n=minutes)
    return text(lang, "duration.hours", h=minutes // 60, m=minutes % 60)
