"""What an ASTM analyser profile is, and the E1394 helpers the profiles share.

A profile knows one analyser's dialect in both directions:

* ``observations``: the records of one complete E1394 message (H..L) from the analyser become
  canonical observations (patient results and QC), or a ``RemoteProtocolError`` naming the field
  and the offending text when the message cannot be mapped;
* ``simulated_message``: what that analyser would send for one sample, used by the instrument
  simulator (``simulators.astm_analyser``) and the tests.

Protocol logic only: no I/O here and none in the profiles.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from drivers.protocols.astm.records import Delimiters, Record
from gateway.errors import RemoteProtocolError
from gateway.model import Observation

PROTOCOL = "astm-e1394"

#: Analysers keep local wall-clock time; Norwegian sites run them on Oslo time.
ANALYSER_TZ = ZoneInfo("Europe/Oslo")


@dataclass(frozen=True, slots=True)
class SimSample:
    """One sample the simulator reports: who ran it, on what, and the values it measured.

    ``values`` holds (instrument test code, value, unit) in the analyser's own codes. For QC,
    ``control_lot`` and ``control_level`` are set and ``patient_id`` is empty.
    """

    specimen_id: str
    patient_id: str
    operator_id: str
    performed_at: datetime
    values: tuple[tuple[str, str, str], ...]
    is_qc: bool = False
    control_lot: str = ""
    control_level: str = ""
    instrument_serial: str = "SIM0001"
    #: strip tests read by eye (urine analysers): their codes
    visual_codes: tuple[str, ...] = ()


class AstmProfile(Protocol):
    """One analyser model's ASTM dialect (see the module docstring)."""

    #: registry key, used as ``driver = "..."`` in config (e.g. ``"astm_afinion2"``)
    key: str
    #: human name, e.g. "Abbott Afinion 2"
    name: str
    #: one line for `trygg drivers --json`
    description: str
    #: decode leniency for this analyser's quirks (frames and records)
    lenient: bool
    #: character set of the record text
    encoding: str

    def observations(
        self, instrument_id: str, records: Sequence[Record]
    ) -> tuple[Observation, ...]: ...

    def simulated_message(
        self, sample: SimSample, delimiters: Delimiters = ...
    ) -> list[Record]: ...

    def simulated_sample(
        self, rng: random.Random, *, operator_id: str, qc: bool, patient_id: str, now: datetime
    ) -> SimSample: ...


def parse_astm_datetime(text: str, *, field: str, tz: ZoneInfo = ANALYSER_TZ) -> datetime | None:
    """``YYYYMMDD[HHMM[SS]]`` in analyser local time -> aware UTC; "" -> None.

    Raises ``RemoteProtocolError`` naming ``field`` and the text when it is not a date.
    """
    text = text.strip()
    if not text:
        return None
    formats = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}
    fmt = formats.get(len(text))
    try:
        if fmt is None:
            raise ValueError(f"length {len(text)}")
        local = datetime.strptime(text, fmt)  # noqa: DTZ007 - local time, zone set below
        return local.replace(tzinfo=tz).astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # OverflowError: year 1 in a zone east of UTC
        # the text goes in ``data`` only: the message may reach a log, the bytes may not
        raise RemoteProtocolError(
            "not an ASTM date/time (YYYYMMDD[HHMM[SS]])",
            field=field,
            data=text.encode("latin-1", "replace"),
        ) from exc


def format_astm_datetime(moment: datetime, tz: ZoneInfo = ANALYSER_TZ) -> str:
    """Aware datetime -> ``YYYYMMDDHHMMSS`` in analyser local time."""
    return moment.astimezone(tz).strftime("%Y%m%d%H%M%S")


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
