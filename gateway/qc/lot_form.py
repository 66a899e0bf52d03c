"""The control-lot forms' checks (pure): a new lot, a lot's changes, a new target.

Each takes the form's text fields and returns the typed values ``gateway.store.qc_lots``
takes, or errors by field (codes, texts ``qc.lot.error.<code>``): a user's mistake is
never an exception. Dates are ``YYYY-MM-DD`` (the date input); numbers take a decimal comma.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Final

#: a lot is judged by a target (Westgard) or by its expected answer (``qc_lots.KINDS``)
KINDS: Final = ("quantitative", "qualitative")
#: the target sources a person sets by hand (first_n and rolling are computed by the judge)
MANUAL_SOURCES: Final = ("manual", "manufacturer")
#: the lot's own target source: "" follows the ``[[qc]]`` entry
LOT_SOURCES: Final = ("", "manufacturer", "first_n", "rolling")
_NAME = re.compile(r"^[^\x00-\x1f\x7f-\x9f]*$")
_LIMITS: Final = {"test_code": 64, "level": 32, "lot": 64, "material": 255, "unit": 64}
MAX_NOTE: Final = 2000


@dataclass(frozen=True, slots=True)
class Parsed:
    """The typed values (keyword arguments for the store) or the errors (field -> codes)."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def _add(errors: dict[str, list[str]], name: str, code: str) -> None:
    errors.setdefault(name, []).append(code)


def _day(fields: Mapping[str, str], name: str, errors: dict[str, list[str]]) -> date | None:
    text = fields.get(name, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        _add(errors, name, "not_a_date")
        return None


def _whole(
    fields: Mapping[str, str], name: str, errors: dict[str, list[str]], low: int
) -> int | None:
    text = fields.get(name, "").strip()
    if not text:
        return None
    if not text.isdigit() or len(text) > 6 or int(text) < low:
        _add(errors, name, "not_a_count")
        return None
    return int(text)


def _decimal(
    fields: Mapping[str, str], name: str, errors: dict[str, list[str]], *, positive: bool = False
) -> Decimal | None:
    text = fields.get(name, "").strip()
    if not text:
        return None
    try:
        number = Decimal(text.replace(",", "."))
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or len(text) > 32:
        _add(errors, name, "not_a_number")
        return None
    if positive and number <= 0:
        _add(errors, name, "not_positive")
        return None
    return number


def _changes(fields: Mapping[str, str], errors: dict[str, list[str]]) -> dict[str, Any]:
    """The fields a lot's edit form may change: expiry, opened, in-use days, active."""
    values: dict[str, Any] = {
        "expires_on": _day(fields, "expires_on", errors),
        "opened_on": _day(fields, "opened_on", errors),
        "in_use_days": _whole(fields, "in_use_days", errors, 1),
    }
    expires, opened = values["expires_on"], values["opened_on"]
    if expires is not None and opened is not None and opened > expires:
        _add(errors, "opened_on", "opened_after_expiry")
    return values


def parse_changes(fields: Mapping[str, str]) -> Parsed:
    """A lot's edit form: expiry, opened date, in-use days and whether it is in use."""
    errors: dict[str, list[str]] = {}
    values = _changes(fields, errors)
    values["active"] = fields.get("active", "") == "1"
    return Parsed(values, errors)


def parse_new_lot(fields: Mapping[str, str], instruments: set[str]) -> Parsed:
    """The new-lot form: ``instrument_id`` is one of ``instruments`` or "" (every one)."""
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    instrument = fields.get("instrument_id", "").strip()
    if instrument and instrument not in instruments:
        _add(errors, "instrument_id", "unknown_instrument")
    values["instrument_id"] = instrument
    for name, limit in _LIMITS.items():
        text = " ".join(fields.get(name, "").split())
        if name in ("test_code", "level", "lot") and not text:
            _add(errors, name, "required")
        elif len(text) > limit:
            _add(errors, name, "too_long")
        elif not _NAME.match(text):
            _add(errors, name, "control_characters")
        values[name] = text
    kind = fields.get("kind", "quantitative").strip() or "quantitative"
    if kind not in KINDS:
        _add(errors, "kind", "unknown_kind")
    values["kind"] = kind
    expected = " ".join(fields.get("expected", "").split())
    if kind == "qualitative" and not expected:
        _add(errors, "expected", "required")
    elif len(expected) > 64:
        _add(errors, "expected", "too_long")
    values["expected"] = expected if kind == "qualitative" else ""
    values.update(_changes(fields, errors))
    mean = _decimal(fields, "manufacturer_mean", errors)
    sd = _decimal(fields, "manufacturer_sd", errors, positive=True)
    if kind == "qualitative":
        mean = sd = None
    elif (mean is None) != (sd is None) and "manufacturer_mean" not in errors:
        _add(errors, "manufacturer_sd" if sd is None else "manufacturer_mean", "both_or_none")
    values["manufacturer_mean"], values["manufacturer_sd"] = mean, sd
    source = fields.get("target_source", "").strip()
    if source not in LOT_SOURCES:
        _add(errors, "target_source", "unknown_source")
    values["target_source"] = source
    values["first_n"] = _whole(fields, "first_n", errors, 2)
    return Parsed(values, errors)


def parse_target(fields: Mapping[str, str]) -> Parsed:
    """The new-target form: mean, SD (> 0), source manual or manufacturer, a note."""
    errors: dict[str, list[str]] = {}
    mean = _decimal(fields, "mean", errors)
    sd = _decimal(fields, "sd", errors, positive=True)
    if mean is None and "mean" not in errors:
        _add(errors, "mean", "required")
    if sd is None and "sd" not in errors:
        _add(errors, "sd", "required")
    source = fields.get("source", "").strip()
    if source not in MANUAL_SOURCES:
        _add(errors, "source", "unknown_source")
    note = fields.get("note", "").strip()
    if len(note) > MAX_NOTE:
        _add(errors, "note", "too_long")
    return Parsed({"mean": mean, "sd": sd, "source": source, "note": note}, errors)
