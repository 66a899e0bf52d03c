"""The dashboard's language: the Translator the templates call, and time formats.

Every visible string lives in the message catalogues (``gateway/locale/*/LC_MESSAGES/trygg.po``,
read by ``gateway.catalogue``); stored codes (holds, quarantine reasons, connection states) are
rendered by ``gateway.texts``. This module picks the reader's language and formats times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from gateway import catalogue, texts
from gateway.catalogue import DEFAULT_LANGUAGE, LANGUAGES

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "TEXT",
    "Translator",
    "action_text",
    "choose_language",
    "label",
    "parse_time",
    "text",
]

# Every text by language then key. Keys are grouped by prefix; "state.*", "reason.*",
# "method.*", "role.*", "outbox_state.*", "quarantine_state.*", "deviation_state.*",
# "order_state.*", "priority.*" and "kind.*" label stored codes (an unknown code is shown as
# the code itself). Placeholders use str.format.
TEXT: Final[Mapping[str, Mapping[str, str]]] = {
    lang: catalogue.messages(lang) for lang in LANGUAGES
}

_TIME_FORMAT: Final[Mapping[str, str]] = {"nb": "%d.%m.%Y %H:%M:%S", "en": "%Y-%m-%d %H:%M:%S"}
_DAY_FORMAT: Final[Mapping[str, str]] = {"nb": "%d.%m.%Y", "en": "%Y-%m-%d"}
_CLOCK_FORMAT: Final = "%H:%M:%S"


def choose_language(requested: str | None, cookie: str | None, default: str) -> str:
    """The query's ``lang`` if known, else the cookie's, else the site default."""
    for candidate in (requested, cookie, default):
        if candidate in LANGUAGES:
            return candidate
    return DEFAULT_LANGUAGE


def text(lang: str, key: str, **params: object) -> str:
    """The string for ``key`` in ``lang`` (English, then the key itself, when missing)."""
    return catalogue.text(lang, key, **params)


def label(lang: str, group: str, code: str) -> str:
    """A label for a stored code such as a state or a hold reason; unknown codes stay as is."""
    if not code:
        return text(lang, "none")
    key = f"{group}.{code.lower()}"
    return text(lang, key) if catalogue.has(lang, key) else code


def action_text(lang: str, reason: str, stored: str) -> str:
    """What to do about a hold, in ``lang``; falls back to the action stored with the hold."""
    return texts.hold_todo(lang, {"reason": reason, "action": stored})


def day_text(lang: str, value: date | str | None) -> str:
    """A calendar day as the reader writes it ("07.12.2026" / "2026-12-07"); "" for none (a due
    date is a whole day: no time, no zone)."""
    if not value:
        return ""
    day = value if isinstance(value, date) else date.fromisoformat(value)
    return day.strftime(_DAY_FORMAT.get(lang, _DAY_FORMAT["en"]))


def parse_time(value: datetime | str | None) -> datetime | None:
    """An aware datetime from a stored value or an ISO string (naive values are UTC)."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Translator:
    """One request's language and time zone, with the helpers the templates call."""

    lang: str
    zone: ZoneInfo

    def t(self, key: str, **params: object) -> str:
        return text(self.lang, key, **params)

    def label(self, group: str, code: str) -> str:
        return label(self.lang, group, code)

    def action(self, reason: str, stored: str) -> str:
        return action_text(self.lang, reason, stored)

    def hold_why(self, hold: Mapping[str, Any]) -> str:
        return texts.hold_why(self.lang, hold)

    def hold_todo(self, hold: Mapping[str, Any]) -> str:
        return texts.hold_todo(self.lang, hold)

    def quarantine_reason(self, row: Mapping[str, Any]) -> str:
        """Why a message is in quarantine, from its reason code and params."""
        return texts.quarantine_text(self.lang, row["reason"], row["params"])

    def field(self, name: str) -> str:
        return texts.field_label(self.lang, name) if name else text(self.lang, "none")

    def connection(self, state: str, detail: str) -> str:
        return texts.connection_text(self.lang, state, detail)

    def lis(self, status: Mapping[str, Any]) -> str:
        """The LIS link's state as a sentence."""
        code = texts.lis_state(bool(status.get("connected")), str(status.get("last_error", "")))
        return text(self.lang, f"lis_state.{code}")

    def when(self, value: datetime | str | None) -> str:
        """Date and time in the site's zone ("never" when missing)."""
        moment = parse_time(value)
        if moment is None:
            return text(self.lang, "never")
        return moment.astimezone(self.zone).strftime(_TIME_FORMAT[self.lang])

    def clock(self, value: datetime) -> str:
        return value.astimezone(self.zone).strftime(_CLOCK_FORMAT)

    def ago(self, value: datetime | str | None, now: datetime) -> str:
        """How long ago, roughly ("for 5 min siden" / "5 min ago")."""
        moment = parse_time(value)
        if moment is None:
            return ""
        seconds = max(0, int((now - moment).total_seconds()))
        if seconds < 60:
            return text(self.lang, "ago.seconds", n=seconds)
        if seconds < 3600:
            return text(self.lang, "ago.minutes", n=seconds // 60)
        if seconds < 86400:
            return text(self.lang, "ago.hours", n=seconds // 3600)
        return text(self.lang, "ago.days", n=seconds // 86400)
