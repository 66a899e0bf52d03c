"""Building the records a simulated ASTM analyser sends (used by the analyser models)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from drivers.errors import LocalProtocolError
from drivers.protocols.astm.records import Delimiters, Field, Record
from simulators.astm_models.sample import SimSample

#: one field for ``build_record``: its text, or its components
FieldValue = str | tuple[str, ...]

# ---------------------------------------------------------------------------------------------
# Building records (simulation)
# ---------------------------------------------------------------------------------------------


def build_record(kind: str, fields: Mapping[int, FieldValue]) -> Record:
    """A record from {standard field number: text or components}; gaps become empty fields."""
    built: list[Field] = []
    for number in range(2, max(fields) + 1):
        value = fields.get(number, "")
        built.append(((value,) if isinstance(value, str) else value,))
    return Record(kind, tuple(built))


def field_of(*components: str) -> Field:
    """A field of one repeat with the given components."""
    return (components,)


def record_of(kind: str, *fields: str | Field) -> Record:
    """A record from its fields in order, field 2 first: plain text or a ready field."""
    return Record(kind, tuple(field_of(f) if isinstance(f, str) else f for f in fields))


def blanks(count: int) -> tuple[str, ...]:
    """``count`` empty fields, for ``record_of``."""
    return ("",) * count


def simulated_header(
    delimiters: Delimiters,
    sender: tuple[str, ...],
    stamp: str,
    *,
    processing: str = "P",
    version: str = "",
) -> Record:
    """H with the sender (H.5), processing ID (H.12), version (H.13) and time (H.14)."""
    fields: dict[int, FieldValue] = {
        2: delimiters.definition,
        5: sender,
        12: processing,
        13: version,
        14: stamp,
    }
    return build_record("H", fields)


def patient_or_control(sample: SimSample) -> FieldValue:
    """Where a patient ID goes: the patient's ID, or ``level^lot`` for a control."""
    return (sample.control_level, sample.control_lot) if sample.is_qc else sample.patient_id


def comparator_flag(code: str, value: str) -> str:
    """R.7 for a simulated value: ``<`` or ``>`` outside the measuring range, else no flag."""
    return value[0] if value[:1] in ("<", ">") else ""


def simulated_results(
    values: Sequence[tuple[str, str, str]],
    flag_of: Callable[[str, str], str],
    *,
    operator_id: str,
    stamp: str,
    time_field: int = 13,
) -> list[Record]:
    """One R per (code, value, unit), numbered from 1: ``^^^CODE``, value, unit, R.7 from
    ``flag_of(code, value)``, status F, operator (R.11) and the time of the test."""
    return [
        build_record(
            "R",
            {
                2: str(sequence),
                3: ("", "", "", code),
                4: value,
                5: unit,
                7: flag_of(code, value),
                9: "F",
                11: operator_id,
                time_field: stamp,
            },
        )
        for sequence, (code, value, unit) in enumerate(values, start=1)
    ]


def require_aware(now: datetime) -> None:
    """Simulated samples are stamped with aware times only."""
    if now.tzinfo is None:
        raise LocalProtocolError("now must be timezone-aware", field="now")


#: the L record that ends a simulated message
TERMINATOR = build_record("L", {2: "1", 3: "N"})
