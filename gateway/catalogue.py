"""The message catalogues: every text a user reads, per language, read from gettext .po files.

The files live beside this module in ``locale/<lang>/LC_MESSAGES/trygg.po`` (package data) and
are read once, with Babel, the first time a text is asked for: no compile step, so a plain
``pip install -e .`` runs them. A msgid is a stable dotted key ("nav.results",
"hold.why.unmapped_test"); placeholders are ``str.format`` fields (``{instrument}``).
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

from babel.messages.pofile import read_po

LANGUAGES: Final = ("nb", "en")
DEFAULT_LANGUAGE: Final = "nb"
#: the language a missing text falls back to, and the one the CLI and the audit log speak
FALLBACK_LANGUAGE: Final = "en"
DOMAIN: Final = "trygg"
LOCALE_DIR: Final = Path(__file__).resolve().parent / "locale"


def po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def messages(lang: str) -> Mapping[str, str]:
    """Every translated msgid of ``lang`` and its text (empty for a language we do not ship)."""
    if lang not in LANGUAGES:
        return MappingProxyType({})
    with po_path(lang).open("rb") as handle:
        catalog = read_po(handle, locale=lang, domain=DOMAIN)
    texts = {
        str(message.id): str(message.string)
        for message in catalog
        if message.id and isinstance(message.id, str) and message.string and not message.fuzzy
    }
    return MappingProxyType(texts)


def has(lang: str, key: str) -> bool:
    return key in messages(lang)


class _Params(dict[str, object]):
    """Format arguments where a missing one renders as "–" instead of failing the page."""

    def __missing__(self, key: str) -> object:
        return "–"


def text(lang: str, key: str, /, **params: object) -> str:
    """The text for ``key`` in ``lang`` (English, then the key itself, when it is missing)."""
    template = messages(lang).get(key) or messages(FALLBACK_LANGUAGE).get(key) or key
    return template.format_map(_Params(params)) if params or "{" in template else template


def placeholders(template: str) -> frozenset[str]:
    """The ``str.format`` field names in ``template``."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)
