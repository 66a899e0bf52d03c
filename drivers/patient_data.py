"""Where patient data sits in a message, so that error texts never quote it (sans-IO, no imports
from the rest of Trygg).

An error names the segment and field ("PID-5", "P.6"); it may quote the offending bytes of any
other segment. Bytes quoted from a segment can still run into a patient segment when a separator
was lost, so ``quotable`` cuts them at the first sign of one. National IDs in the bytes of other
segments are masked by the gateway's scrub where the text is shown.
"""

from __future__ import annotations

import re
from typing import Final

#: HL7 segments that identify a person: patient, next of kin, visit, merge, guarantor, insurance
HL7_PATIENT_SEGMENTS: Final = frozenset(
    {"PID", "PD1", "NK1", "PV1", "PV2", "MRG", "GT1", "IN1", "IN2", "IN3"}
)
#: the ASTM E1394 patient record
ASTM_PATIENT_RECORD: Final = "P"

# An HL7 patient segment ID anywhere (a lost CR glues it to the segment before), followed by
# any separator; an ASTM P record at a record's start (after CR, LF or STX and a frame number)
# followed by any delimiter, or "P|" anywhere. Cutting too early only hides harmless bytes.
_MARKS: Final = re.compile(
    rb"(?:" + b"|".join(s.encode() for s in sorted(HL7_PATIENT_SEGMENTS)) + rb")(?![A-Za-z0-9])"
    rb"|(?:^|(?<=[\r\n\x02]))[0-7]?P(?![A-Za-z0-9])"
    rb"|P\|"
)
_FIELD_NAME: Final = re.compile(r"[A-Za-z0-9]+")


def is_patient_field(field: str | None) -> bool:
    """Whether an error's field names a patient segment or record ("PID-5", "PID[2]-3", "P.6")."""
    if not field:
        return False
    name = _FIELD_NAME.match(field)
    if name is None:
        return False
    return name.group() in HL7_PATIENT_SEGMENTS or name.group() == ASTM_PATIENT_RECORD


def quotable(data: bytes) -> bytes:
    """The part of ``data`` an error may quote: everything before the first patient segment."""
    mark = _MARKS.search(data)
    return data if mark is None else data[: mark.start()]


def _patient_spans(raw: bytes) -> list[tuple[int, int]]:
    """Where patient segments sit in a message: from each mark to the end of its line."""
    spans = []
    for mark in _MARKS.finditer(raw):
        ends = [at for at in (raw.find(b"\r", mark.end()), raw.find(b"\n", mark.end())) if at >= 0]
        spans.append((mark.start(), min(ends, default=len(raw))))
    return spans


def read_from_patient(data: bytes, raw: bytes) -> bool:
    """Whether ``data`` (bytes an error would quote) occurs inside a patient segment of ``raw``:
    a segment that swallowed the patient segment after it (a lost separator) then reads a
    name or an ID as one of its own fields."""
    if not data:
        return False
    spans = _patient_spans(raw)
    at = raw.find(data)
    while at >= 0:
        if any(start <= at < end for start, end in spans):
            return True
        at = raw.find(data, at + 1)
    return False
