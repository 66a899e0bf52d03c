"""What an ASTM analyser profile is, and the E1394 helpers the profiles share.

A profile knows one analyser's dialect: ``observations`` turns the records of one complete
E1394 message (H..L) from the analyser into canonical observations (patient results and QC), or
raises a ``RemoteProtocolError`` naming the field and the offending text when the message cannot
be mapped. The profiles live in ``drivers.analysers.profiles``; what each analyser would send
(the simulators' models) lives in ``simulators.astm_models``.

The profiles share two modules: this one (the protocol, the analyser's time zone and field
readers) and ``astm_messages`` (walking a message's records). Protocol logic only: no I/O here
and none in the profiles.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Protocol

from drivers.analysers.site import ANALYSER_TZ
from drivers.errors import RemoteProtocolError
from drivers.model import Observation
from drivers.protocols.astm.datetimes import format_datetime, parse_datetime
from drivers.protocols.astm.records import Record

PROTOCOL = "astm-e1394"

Extra = tuple[tuple[str, str], ...]


class AstmProfile(Protocol):
    """One analyser model's ASTM dialect (see the module docstring)."""

    #: registry key, used as ``driver = "..."`` in config (e.g. ``"astm_afinion2"``)
    key: str
    #: human name, e.g. "Abbott Afinion 2"
    name: str
    #: one line for `trygg drivers --json`
    description: str
    #: how this analyser marks a control (QC) run, and where its lot and level come from
    qc_recognition: str
    #: decode leniency for this analyser's quirks (frames and records)
    lenient: bool
    #: character set of the record text
    encoding: str

    def observations(
        self, instrument_id: str, records: Sequence[Record]
    ) -> tuple[Observation, ...]: ...


def parse_astm_datetime(text: str, *, field: str, tz: tzinfo = ANALYSER_TZ) -> datetime | None:
    """``YYYYMMDD[HHMM[SS]]`` in analyser local time -> aware UTC; "" -> None.

    Raises ``RemoteProtocolError`` naming ``field`` and the text when it is not a date.
    """
    return parse_datetime(text, field=field, tz=tz)


def format_astm_datetime(moment: datetime, tz: tzinfo = ANALYSER_TZ) -> str:
    """Aware datetime -> ``YYYYMMDDHHMMSS`` in analyser local time."""
    return format_datetime(moment, tz=tz)


#: H.12 as Mindray's BS analysers write it, the record kind after the E1394 processing ID:
#: "PR" patient results, "QR" QC results (corpus: mindray_bs240_session). They are the
#: standard's P and Q; any other text is passed on as sent (the gateway's rule then finds it
#: is not production).
VENDOR_PROCESSING_IDS = {"PR": "P", "QR": "Q"}


def header_processing_id(header: Record) -> str:
    """H.12 in E1394's terms (P, T, D, Q), as sent but for the vendor forms above."""
    sent = header.value(12).strip()
    return VENDOR_PROCESSING_IDS.get(sent.upper(), sent)


def universal_test_code(record: Record, number: int = 3) -> str:
    """The analyser's own test code from a universal test ID (``^^^CODE`` -> ``CODE``).

    Falls back to the first non-empty component, so ``CODE`` and ``CODE^^^`` work too.
    """
    field = record.field(number)
    if not field:
        return ""
    components = field[0]
    if len(components) > 3 and components[3].strip():
        return components[3].strip()
    return next((c.strip() for c in components if c.strip()), "")


def field_error(field: str, problem: str, text: str) -> RemoteProtocolError:
    """Bad input in ``field``; the offending text goes in ``data`` only, as the message may be
    logged and the bytes may not."""
    return RemoteProtocolError(problem, field=field, data=text.encode("latin-1", "replace"))


# ---------------------------------------------------------------------------------------------
# Reading fields
# ---------------------------------------------------------------------------------------------

_COMPARATOR_NUMBER = re.compile(r"(?P<cmp>[<>]=?)?\s*(?P<num>[0-9]{1,6}(?:[.,][0-9]{1,4})?)")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_COMMA_NUMBER = re.compile(r"[+-]?\d+,\d+")


def comparator_number(text: str, *, field: str, problem: str) -> tuple[str, str]:
    """``number`` or ``<``/``>``/``<=``/``>=`` and a number -> (value, HL7 type ``NM``/``SN``).

    A decimal comma is still a decimal point; anything else is refused with ``problem``.
    """
    match = _COMPARATOR_NUMBER.fullmatch(text.strip())
    if match is None:
        raise field_error(field, problem, text)
    comparator = match["cmp"] or ""
    return comparator + match["num"].replace(",", "."), ("SN" if comparator else "NM")


def normalise_value(text: str) -> tuple[str, str, Extra]:
    """(value, HL7 value type, extra) for a sent value: padding stripped, decimal comma read."""
    value = text.strip()
    if _NUMBER.fullmatch(value):
        return value, "NM", ()
    if _COMMA_NUMBER.fullmatch(value):
        return value.replace(",", "."), "NM", (("value_text", value),)
    return value, "ST", ()


def normalise_range(text: str) -> str:
    """``"4.0 - 10.0"`` or ``"4,0-10,0"`` -> ``"4.0-10.0"``; anything else stripped, as sent."""
    parts = [p.strip() for p in text.split("-")]
    if len(parts) == 2 and all(_NUMBER.fullmatch(p) or _COMMA_NUMBER.fullmatch(p) for p in parts):
        return "-".join(p.replace(",", ".") for p in parts)
    return text.strip()


def comment_text(record: Record) -> str:
    """C.4 as one line: repeats joined by "; ", non-empty components by a space."""
    repeats = (" ".join(c.strip() for c in rep if c.strip()) for rep in record.field(4))
    return "; ".join(text for text in repeats if text)


def first_patient_id(record: Record) -> str:
    """P.3 practice-assigned ID, else P.4 laboratory-assigned, else P.5."""
    return next((pid for n in (3, 4, 5) if (pid := record.value(n).strip())), "")


def repeated_flags(record: Record) -> tuple[str, ...]:
    """R.7 abnormal flags, one per repeat, as sent."""
    return tuple(flag for rep in record.field(7) if rep and (flag := rep[0].strip()))


def measured_at(record: Record, numbers: Sequence[int] = (13,)) -> datetime | None:
    """The first of these date/time fields that is sent (R.13 completed, R.12 started)."""
    times = (parse_astm_datetime(record.value(n), field=f"{record.type}.{n}") for n in numbers)
    return next((moment for moment in times if moment is not None), None)
