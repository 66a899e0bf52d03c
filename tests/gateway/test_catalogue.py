"""The message catalogues: both languages have every message used, with the same placeholders."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import get_args

import pytest
from babel.messages.pofile import read_po

from drivers.model import Method
from gateway import catalogue
from gateway.model import HoldReason, State
from gateway.national_id import PROBLEMS, IdKind
from gateway.quarantine_reason import REASONS
from gateway.store.health import PROBLEMS as STORE_PROBLEMS
from gateway.texts import INSTRUMENT_STATES, LIS_STATES
from gateway.web.context import NAV

ROOT = Path(catalogue.__file__).resolve().parent.parent
TEMPLATES = ROOT / "gateway" / "web" / "templates"
# t("key"), t('key', ...), text(lang, "key"), tr.t("key") in templates and code
_LITERAL_KEY = re.compile(r"""\b(?:t|text)\(\s*(?:\w+,\s*)?["']([a-z_]+\.[a-z_.]+)["']\s*[,)]""")


def literal_keys() -> set[str]:
    found: set[str] = set()
    for path in [*TEMPLATES.glob("*.html"), *(ROOT / "gateway").rglob("*.py")]:
        found |= set(_LITERAL_KEY.findall(path.read_text(encoding="utf-8")))
    return found


def keys_for_codes() -> set[str]:
    """The keys built from stored codes at display time: one per code this version writes."""
    keys = {item.key for item in NAV}
    keys |= {f"lang.{code}" for code in catalogue.LANGUAGES}
    keys |= {f"state.{s.value}" for s in State}
    keys |= {f"method.{m.value}" for m in Method}
    for reason in HoldReason:
        keys |= {f"reason.{reason}", f"hold.why.{reason}", f"hold.todo.{reason}"}
    keys |= {f"id_kind.{kind}" for kind in (*get_args(IdKind), "unknown")}
    keys |= {f"id_problem.{code}" for code in PROBLEMS}
    keys |= {f"quarantine.reason.{code}" for code in REASONS}
    keys |= {f"connection.{state}" for state in INSTRUMENT_STATES}
    keys |= {f"lis_state.{state}" for state in LIS_STATES}
    keys |= {f"outbox_state.{s}" for s in ("pending", "sent", "acknowledged", "rejected")}
    keys |= {f"quarantine_state.{s}" for s in ("open", "replayed", "discarded")}
    keys |= {f"orders.none_{s}" for s in ("open", "cancelled", "all")}
    keys |= {"result.status_F", "result.status_C", "field.segment"}
    keys |= {f"counter.{k}" for k in ("received", "held", "queued", "sent", "acknowledged")}
    keys |= {f"store.problem.{code}" for code in STORE_PROBLEMS}
    for backend in ("sqlite", "postgresql"):
        keys |= {f"store.todo.{backend}", f"store.refuse.{backend}"}
        keys |= {f"store.alarm.todo.{backend}"}
    return keys | {f"counter.{k}" for k in ("rejected", "quarantined", "deviations")}


def test_both_catalogues_have_the_same_messages() -> None:
    assert set(catalogue.messages("nb")) == set(catalogue.messages("en"))
    assert len(catalogue.messages("nb")) > 200


def test_placeholders_match_between_the_languages() -> None:
    nb, en = catalogue.messages("nb"), catalogue.messages("en")
    mismatched = {
        key: (sorted(catalogue.placeholders(nb[key])), sorted(catalogue.placeholders(en[key])))
        for key in nb
        if catalogue.placeholders(nb[key]) != catalogue.placeholders(en.get(key, ""))
    }
    assert mismatched == {}


def test_every_message_used_exists_in_both() -> None:
    used = literal_keys() | keys_for_codes()
    assert len(literal_keys()) > 100  # the scan finds the templates' keys
    for lang in catalogue.LANGUAGES:
        assert used - set(catalogue.messages(lang)) == set(), lang


@pytest.mark.parametrize("lang", catalogue.LANGUAGES)
def test_catalogue_files_are_clean(lang: str) -> None:
    """No fuzzy or empty entries, and the language in the header."""
    with catalogue.po_path(lang).open("rb") as handle:
        catalog = read_po(handle)
    assert str(catalog.locale) == lang
    entries = [m for m in catalog if m.id]
    assert entries and all(m.string and not m.fuzzy for m in entries)
    assert len(entries) == len(catalogue.messages(lang))


def test_texts_with_params_and_fallbacks() -> None:
    assert catalogue.text("nb", "ago.minutes", n=5) == "for 5 min siden"
    assert catalogue.text("en", "ago.minutes", n=5) == "5 min ago"
    assert catalogue.text("xx", "ago.minutes", n=5) == "5 min ago"  # unknown language: English
    assert catalogue.text("nb", "no.such.key") == "no.such.key"
    # a missing parameter renders as a dash rather than failing the page
    assert catalogue.text("nb", "ago.minutes") == "for – min siden"


def test_catalogues_ship_as_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["gateway"]
    for lang in catalogue.LANGUAGES:
        relative = catalogue.po_path(lang).relative_to(ROOT / "gateway")
        assert any(relative.match(pattern) for pattern in patterns), relative
    assert any(dep.startswith("babel") for dep in config["project"]["dependencies"])
