"""Siemens CLINITEK Status+ urine strip reader: an ASTM E1394 dialect for it, both ways.

Sources, and what they could not settle. Of the two candidates the task named, neither
vendor's E1394 record layout could be read here: Roche's "Urisys 1100 Host Interface Document"
(2653-00-1208, software 5.x/6.x) was found but only its front matter was readable; for the
CLINITEK Status family, Siemens' support bulletin CTStatus-002 (2004) describes a
comma-delimited export for the original CLINITEK Status, and a public integrator's report
(OpenIntegrationEngine discussion 170) says a Status+ without the Connect base frames a
non-E1394 message in E1381. The CLINITEK Status+ was chosen because it is the reader in the
Siemens point-of-care family the DCA Vantage belongs to; **its layout below is therefore ours**,
built on the LIS2-A2 standard field positions and the conventions of Siemens' DCA Vantage host
document (H.5 ``name^version^serial``, O.12 ``Q`` for controls, R.11 operator). Check it against
the site's firmware (or its middleware) before go-live. The message::

    H|\\^&|||CLINITEK Status+^SUA-2014r74-4^CS012345|||||||P|1|20240601140000
    P|1|<patient ID>
    O|1|0042||^^^MULTISTIX 10 SG|||||||N||||||||||||||F
    R|1|^^^GLU|Neg|||||F||<operator>||20240601140000
    R|2|^^^LEU|2+|||A||F||<operator>||20240601140000
    R|3|^^^COL|Yellow|||||F||<operator>||20240601140000
    L|1|N

* Pads (Multistix 10 SG, in strip order): GLU BIL KET SG BLO pH PRO URO NIT LEU, reported in
  the Nordic plus system (``Neg``, ``1+``..``4+``) where the reader offers it, SG and pH as
  numbers, URO in µmol/L (latin-1 ``µ``); ``<=``/``>=`` mark the ends of a pad's scale.
* Colour (``COL``) and clarity (``CLA``) are not read by the instrument: the operator looks at
  the urine and enters them. They map to ``Method.VISUAL``; the pads are ``Method.MEASURED``.
* R.7 ``A`` marks a result outside the normal (negative) category.
* Controls (Chek-Stix): O.12 ``Q``, and ``P.3 = <level>^<control lot>`` (Positive/Negative).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from drivers.analysers.astm_base import (
    AstmProfile,
    SimSample,
    format_astm_datetime,
    parse_astm_datetime,
    universal_test_code,
)
from drivers.protocols.astm.records import DEFAULT_DELIMITERS, Delimiters, Field, Record
from gateway.errors import LocalProtocolError, RemoteProtocolError
from gateway.model import Method, Observation

SENDER_NAME = "CLINITEK Status+"
SOFTWARE_VERSION = "SUA-2014r74-4"
STRIP = "MULTISTIX 10 SG"
#: entered by the operator from looking at the sample, never read by the instrument
VISUAL_CODES = frozenset({"COL", "CLA"})
#: LIS2-A2 R.7 abnormal flags
ABNORMAL_FLAGS = frozenset({"L", "H", "LL", "HH", "<", ">", "N", "A", "U", "D", "B", "W"})
RESULT_STATUSES = frozenset({"F", "C"})
TEST_NAMES = {
    "GLU": "Glucose, urine strip",
    "BIL": "Bilirubin, urine strip",
    "KET": "Ketones, urine strip",
    "SG": "Specific gravity, urine strip",
    "BLO": "Blood, urine strip",
    "pH": "pH, urine strip",
    "PRO": "Protein, urine strip",
    "URO": "Urobilinogen, urine strip",
    "NIT": "Nitrite, urine strip",
    "LEU": "Leukocytes, urine strip",
    "COL": "Colour, urine (visual)",
    "CLA": "Clarity, urine (visual)",
}
#: each pad's scale, normal (unflagged) categories first; unit per code below
_PLUS4 = ("Neg", "1+", "2+", "3+", "4+")
_PLUS3 = ("Neg", "1+", "2+", "3+")
SCALES: dict[str, tuple[str, ...]] = {
    "GLU": _PLUS4,
    "BIL": _PLUS3,
    "KET": _PLUS4,
    "SG": ("<=1.005", "1.010", "1.015", "1.020", "1.025", ">=1.030"),
    "BLO": _PLUS3,
    "pH": ("5.0", "5.5", "6.0", "6.5", "7.0", "7.5", "8.0", "8.5", ">=9.0"),
    "PRO": _PLUS4,
    "URO": ("3.2", "16", "33", "66", ">=131"),
    "NIT": ("Neg", "Pos"),
    "LEU": _PLUS3,
    "COL": ("Yellow", "Straw", "Amber", "Orange", "Red", "Other"),
    "CLA": ("Clear", "Slightly cloudy", "Cloudy", "Turbid"),
}
#: how many leading categories of each scale are normal (not flagged ``A``)
NORMAL_COUNT = {"URO": 2, "SG": 6, "pH": 9, "COL": 3, "CLA": 2}
UNITS = {"URO": "µmol/L"}
_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .+]{0,23}|[<>]=?[0-9]{1,4}(?:\.[0-9]{1,3})?")
_NUMBER = re.compile(r"(?P<cmp>[<>]=?)?(?P<num>[0-9]{1,4}(?:\.[0-9]{1,3})?)")


def _fail(field: str, problem: str, text: str) -> RemoteProtocolError:
    # The offending text goes in ``data`` only: the message itself may be logged.
    return RemoteProtocolError(problem, field=field, data=text.encode("latin-1", "replace"))


def _when(text: str, field: str) -> datetime | None:
    # parse_astm_datetime's own message quotes the text; ours keeps it in ``data`` only, and
    # also covers dates the UTC conversion cannot represent (year 1: OverflowError).
    try:
        return parse_astm_datetime(text, field=field)
    except (RemoteProtocolError, OverflowError) as exc:
        raise _fail(field, "not an ASTM date/time (YYYYMMDD[HHMM[SS]])", text) from exc


def _strip_value(text: str, field: str) -> tuple[str, str]:
    """R.4 -> (value, HL7 value type): a category (``Neg``, ``2+``), a number, ``>=`` number."""
    value = text.strip()
    if _VALUE.fullmatch(value) is None:
        raise _fail(field, "value is not a strip category, a number or '<=', '>=' a number", text)
    number = _NUMBER.fullmatch(value)
    if number is None:
        return value, "ST"
    return value, ("SN" if number["cmp"] else "NM")


def _record(kind: str, fields: Mapping[int, str | tuple[str, ...]]) -> Record:
    """A record from {standard field number: text or components}; gaps become empty fields."""
    built: list[Field] = []
    for number in range(2, max(fields) + 1):
        value = fields.get(number, "")
        built.append(((value,) if isinstance(value, str) else value,))
    return Record(kind, tuple(built))


@dataclass(frozen=True, slots=True)
class _Context:
    """What the P and O records say about the results that follow them."""

    patient_id: str = ""
    control_lot: str = ""
    specimen_id: str = ""
    is_qc: bool = False


class ClinitekStatusProfile:
    """The CLINITEK Status+ dialect (see the module docstring: the layout is ours)."""

    key: str = "astm_clinitek_status"
    name: str = "Siemens CLINITEK Status+"
    description: str = (
        "Siemens CLINITEK Status+ urine strip reader over ASTM E1381/E1394 (layout per LIS2-A2, "
        "verify against site firmware); colour/clarity as visual readings, Chek-Stix controls"
    )
    lenient: bool = True
    encoding: str = "latin-1"

    def observations(
        self, instrument_id: str, records: Sequence[Record]
    ) -> tuple[Observation, ...]:
        """Map one H..L message to observations, or raise ``RemoteProtocolError``."""
        if not records or records[0].type != "H":
            raise _fail("H", "a message must start with its H record", "")
        header = records[0]
        processing = header.value(12).strip() or "P"
        if processing != "P":
            raise _fail("H.12", "processing ID is not P (production)", processing)
        serial = header.value(5, 0, 2).strip()
        sent_at = _when(header.value(14), "H.14")
        context = _Context()
        found: list[Observation] = []
        for record in records[1:]:
            if record.type == "H":
                raise _fail("H", "a second H record inside one message", header.value(5))
            if record.type == "L":
                break
            if record.type == "P":
                # P.3 is the patient ID, or for a control <level>^<lot>: the O record decides
                context = _Context(
                    patient_id=record.value(3).strip(), control_lot=record.value(3, 0, 1).strip()
                )
            elif record.type == "O":
                context = _order(context, record)
            elif record.type == "R":
                found.append(_result(record, instrument_id, serial, sent_at, context))
        return tuple(found)

    def simulated_message(
        self, sample: SimSample, delimiters: Delimiters = DEFAULT_DELIMITERS
    ) -> list[Record]:
        """The records for one strip: H, P, O, one R per pad and visual entry, L."""
        for code, _, _ in sample.values:
            if code not in TEST_NAMES:
                raise LocalProtocolError(f"not a CLINITEK Status+ result: {code!r}", field="R.3")
        if not set(sample.visual_codes) <= VISUAL_CODES:
            raise LocalProtocolError(
                f"only {sorted(VISUAL_CODES)} are read by eye; the pads are read by the reader",
                field="R.3",
            )
        stamp = format_astm_datetime(sample.performed_at)
        records = [
            _record(
                "H",
                {
                    2: delimiters.definition,
                    5: (SENDER_NAME, SOFTWARE_VERSION, sample.instrument_serial),
                    12: "P",
                    13: "1",
                    14: stamp,
                },
            ),
            _record(
                "P",
                {
                    2: "1",
                    3: (sample.control_level, sample.control_lot)
                    if sample.is_qc
                    else sample.patient_id,
                },
            ),
            _record(
                "O",
                {
                    2: "1",
                    3: sample.specimen_id,
                    5: ("", "", "", STRIP),
                    12: "Q" if sample.is_qc else "N",
                    26: "F",
                },
            ),
        ]
        for sequence, (code, value, unit) in enumerate(sample.values, start=1):
            fields: dict[int, str | tuple[str, ...]] = {
                2: str(sequence),
                3: ("", "", "", code),
                4: value,
                5: unit,
                7: "" if _is_normal(code, value) else "A",
                9: "F",
                11: sample.operator_id,
                13: stamp,
            }
            records.append(_record("R", fields))
        records.append(_record("L", {2: "1", 3: "N"}))
        return records

    def simulated_sample(
        self, rng: random.Random, *, operator_id: str, qc: bool, patient_id: str, now: datetime
    ) -> SimSample:
        """One strip: a plausible urine (with colour/clarity by eye) or a Chek-Stix control."""
        if now.tzinfo is None:
            raise LocalProtocolError("now must be timezone-aware", field="now")
        level = rng.choice(("Positive", "Negative")) if qc else ""
        values = [(code, _pick(rng, code, level), UNITS.get(code, "")) for code in _PADS]
        visual: tuple[str, ...] = ()
        if not qc and rng.random() < 0.8:  # the operator entered colour and clarity
            visual = ("COL", "CLA")
            values += [(code, _pick(rng, code, ""), "") for code in visual]
        return SimSample(
            specimen_id=f"{rng.randint(1, 9999):04d}",
            patient_id="" if qc else patient_id,
            operator_id=operator_id,
            performed_at=now.astimezone(UTC).replace(microsecond=0),
            values=tuple(values),
            is_qc=qc,
            control_lot=f"{rng.randint(100000, 999999)}" if qc else "",
            control_level=level,
            instrument_serial=f"CS{rng.randint(0, 999999):06d}",
            visual_codes=visual,
        )


_PADS = ("GLU", "BIL", "KET", "SG", "BLO", "pH", "PRO", "URO", "NIT", "LEU")


def _is_normal(code: str, value: str) -> bool:
    scale = SCALES.get(code, ())
    normal = scale[: NORMAL_COUNT.get(code, 1)]
    return value in normal or value not in scale


def _pick(rng: random.Random, code: str, control_level: str) -> str:
    """A pad reading: mostly normal for patients; a Chek-Stix level gives its known pattern."""
    scale = SCALES[code]
    normal = NORMAL_COUNT.get(code, 1)
    if control_level == "Negative":
        return scale[0] if normal == 1 else scale[min(normal, len(scale)) // 2]
    if control_level == "Positive":
        return scale[-1] if normal == 1 else scale[len(scale) // 2]
    if normal < len(scale) and rng.random() < 0.2:
        return rng.choice(scale[normal:])
    return rng.choice(scale[:normal])


def _order(context: _Context, record: Record) -> _Context:
    action = record.value(12).strip()
    if action not in ("", "N", "Q"):
        raise _fail("O.12", "action code is not N (patient) or Q (control)", action)
    is_qc = action == "Q"
    return _Context(
        patient_id=context.patient_id,
        control_lot=context.control_lot,
        specimen_id=record.value(3).strip() or record.value(4).strip(),
        is_qc=is_qc,
    )


def _result(
    record: Record, instrument_id: str, serial: str, sent_at: datetime | None, context: _Context
) -> Observation:
    code = universal_test_code(record, 3)
    if not code:
        raise _fail("R.3", "result has no test code", record.value(3))
    value, value_type = _strip_value(record.value(4), "R.4")
    flag = record.value(7).strip()
    if flag and flag not in ABNORMAL_FLAGS:
        raise _fail("R.7", "abnormal flag is not a LIS2-A2 flag", flag)
    status = record.value(9).strip() or "F"
    if status not in RESULT_STATUSES:
        raise _fail("R.9", "result status is neither F (final) nor C (correction)", status)
    return Observation(
        instrument_id=instrument_id,
        test_code=code,
        value=value,
        value_type=value_type,
        unit=record.value(5).strip(),
        reference_range=record.value(6).strip(),
        abnormal_flags=(flag,) if flag else (),
        method=Method.VISUAL if code in VISUAL_CODES else Method.MEASURED,
        performed_at=_when(record.value(13), "R.13") or sent_at,
        operator_id=record.value(11).strip(),
        specimen_id=context.specimen_id,
        patient_id="" if context.is_qc else context.patient_id,
        result_status=status,
        instrument_serial=serial,
        test_name=TEST_NAMES.get(code, ""),
        is_qc=context.is_qc,
        control_lot=context.control_lot if context.is_qc else "",
        control_level=context.patient_id if context.is_qc else "",
    )


PROFILE: AstmProfile = ClinitekStatusProfile()
