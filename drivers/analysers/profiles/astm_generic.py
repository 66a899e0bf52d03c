"""The generic LIS2-A2 profile: standard field positions, for analysers without their own profile.

Where each value is read (LIS2-A2 numbering, field 1 = the record type):

* H.5 sender name: ``name^version^serial``; component 3 is the instrument serial.
* P.3 practice-assigned patient ID, else P.4 laboratory-assigned, else P.5 (first component).
* O.3 specimen ID (first component, stripped; O.4 when O.3 is empty); O.12 action code ``Q``
  marks quality control. This profile's own convention for QC: O.3 is
  ``control^lot^level``, so components 2 and 3 name the control lot and level.
* R.3 universal test ID (``^^^CODE``), R.4 value, R.5 units, R.6 reference range, R.7 abnormal
  flags (repeats), R.9 result status (F final, C correction, ...), R.11 operator (first
  component), R.13 date/time test completed, R.14 instrument identification.
* C records right after a result (C.4, components joined) become that result's comment.

Mapping only: no I/O here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.analysers.astm_base import (
    parse_astm_datetime,
    universal_test_code,
)
from drivers.errors import RemoteProtocolError
from drivers.model import Observation
from drivers.protocols.astm.records import Field, Record


def _first(field: Field) -> str:
    """The first component of the first repeat, stripped."""
    return field[0][0].strip() if field and field[0] else ""


def _component(field: Field, number: int) -> str:
    """Component ``number`` (1-based) of the first repeat, stripped, or ""."""
    if not field or len(field[0]) < number:
        return ""
    return field[0][number - 1].strip()


def _text(field: Field) -> str:
    """Every non-empty component of every repeat, joined by spaces (free text fields)."""
    return " ".join(c.strip() for rep in field for c in rep if c.strip())


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() != ""


@dataclass(frozen=True, slots=True)
class _Order:
    specimen_id: str
    is_qc: bool
    control_lot: str
    control_level: str


def _read_order(record: Record) -> _Order:
    specimen = _first(record.field(3)) or _first(record.field(4))
    is_qc = record.value(12).strip().upper() == "Q"
    lot = _component(record.field(3), 2) if is_qc else ""
    level = _component(record.field(3), 3) if is_qc else ""
    return _Order(specimen, is_qc, lot, level)


def _read_result(
    instrument_id: str,
    record: Record,
    *,
    patient_id: str,
    order: _Order | None,
    header_serial: str,
) -> Observation:
    code = universal_test_code(record, 3)
    if not code:
        shown = "^".join(record.field(3)[0]) if record.field(3) else ""
        raise RemoteProtocolError(
            f"R.3: no test code in the universal test ID {shown!r}",
            field="R.3",
            data=shown.encode("latin-1", "replace"),
        )
    value_components = [c.strip() for c in record.field(4)[0]] if record.field(4) else [""]
    value = value_components[0]
    extra: tuple[tuple[str, str], ...] = ()
    if sum(1 for c in value_components if c) > 1 or (not value and any(value_components)):
        extra = (("R.4", "^".join(value_components)),)  # e.g. Roche "-1^0.325": keep it all
    flags = tuple(rep[0].strip() for rep in record.field(7) if rep and rep[0].strip())
    is_qc = order is not None and order.is_qc
    return Observation(
        instrument_id=instrument_id,
        test_code=code,
        value=value,
        value_type="NM" if _is_number(value) else "ST",
        unit=_first(record.field(5)),
        reference_range=_first(record.field(6)),
        abnormal_flags=flags,
        performed_at=parse_astm_datetime(record.value(13), field="R.13"),
        operator_id=_first(record.field(11)),
        specimen_id=order.specimen_id if order else "",
        patient_id="" if is_qc else patient_id,
        result_status=record.value(9).strip() or "F",
        instrument_serial=_first(record.field(14)) or header_serial,
        is_qc=is_qc,
        control_lot=order.control_lot if order else "",
        control_level=order.control_level if order else "",
        extra=extra,
    )


@dataclass(slots=True)
class GenericLis2Profile:
    """An AstmProfile reading the standard LIS2-A2 positions (see the module docstring)."""

    key: str = "astm_generic"
    name: str = "Generic ASTM LIS2-A2 analyser"
    description: str = (
        "Any analyser speaking ASTM E1381/E1394 (CLSI LIS1-A/LIS2-A2) with standard field "
        "positions; gateway in the host role, ACK after the message is stored; answers host "
        "queries"
    )
    qc_recognition: str = (
        "a control run has O.12 = Q (LIS2-A2 action code); its control lot and level are "
        "O.3 components 2 and 3"
    )
    lenient: bool = False
    encoding: str = "latin-1"

    def observations(
        self, instrument_id: str, records: Sequence[Record]
    ) -> tuple[Observation, ...]:
        """Patient results and QC of one message (H..L), in record order."""
        out: list[Observation] = []
        header_serial = ""
        patient_id = ""
        order: _Order | None = None
        after_result = False  # a C record comments the result right before it
        for record in records:
            kind = record.type
            if kind == "H":
                header_serial = _component(record.field(5), 3)
            elif kind == "P":
                patient_id = next((pid for n in (3, 4, 5) if (pid := _first(record.field(n)))), "")
                order = None
            elif kind == "O":
                order = _read_order(record)
            elif kind == "R":
                out.append(
                    _read_result(
                        instrument_id,
                        record,
                        patient_id=patient_id,
                        order=order,
                        header_serial=header_serial,
                    )
                )
            elif kind == "C" and after_result and (comment := _text(record.field(4))):
                last = out[-1]
                joined = f"{last.comment}; {comment}" if last.comment else comment
                out[-1] = dataclasses.replace(last, comment=joined)
            after_result = kind == "R" or (kind == "C" and after_result)
        return tuple(out)


GENERIC = GenericLis2Profile()
