"""Abbott Afinion 2 (HbA1c, CRP, lipid panel, ACR): its ASTM E1394 dialect in both directions.

Sources. The Afinion 2 LIS/ASTM interface document itself could not be read here. The field
positions below come from (a) the analyser's own message in the corpus
(``abbott_afinion2__senaite.astm.txt``), (b) the field notes and example records published with
senaite.astm's Afinion 2 instrument (facts only: which field carries what, the value sets), and
(c) the Afinion 2 user manual (operator ID and up to four patient IDs, each at most 16
characters). What the message looks like::

    H|\\^&|||Afinion 2 Analyzer^^AF20052397|||||||P|1|20241206141235
    P|1||3643|||||U
    O|1||5|^^^HbA1c|||||||N||||^O||||||||^10228413||F
    R|1|^^^HbA1c|5.9|%||||F||3643||20241206140615
    L|1|N

* H.5 = ``Afinion 2 Analyzer^^<device ID>``; H.12 processing ID: ``P`` patient, ``Q`` control.
* P.4 = the patient ID (P-ID 1; P.3 is read as a fallback).
* O.4 = the analyser's run number (O.3, the host's specimen ID, is used when present);
  O.5.4 = the assay (HbA1c, CRP, Lipid Panel, ACR); O.16.2 = specimen source (O other,
  C capillary, V venous); O.24.2 = the test cartridge lot (8 digits, as printed on the kit).
* R.3.4 = the result code; R.4 = value, ``<x``/``>x`` outside the measuring range, ``---`` when
  it cannot be measured or calculated; R.7 = ``< > L H LL HH !``; R.9 = ``F``; R.11 = operator ID;
  R.13 = time of measurement (analyser local time).

Assumption, not from a vendor document: for controls (H.12 ``Q``) the control the operator
chose is carried where the patient ID goes, as ``P.4 = <level>^<control lot>`` (e.g. ``C I``).
A ``---`` value is kept as text with result status ``X`` (cannot be done), never as a number.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
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

SENDER_NAME = "Afinion 2 Analyzer"
PROCESSING_IDS = frozenset({"P", "Q"})
#: R.7 values the Afinion 2 uses (senaite.astm notes on the Afinion 2 interface).
ABNORMAL_FLAGS = frozenset({"<", ">", "L", "H", "LL", "HH", "!"})
RESULT_STATUSES = frozenset({"F", "C", "X"})
NOT_MEASURABLE = "---"

#: result code -> the assay (cartridge) that measures it, as named in O.5
ASSAY_OF = {
    "HbA1c": "HbA1c",
    "CRP": "CRP",
    "Chol": "Lipid Panel",
    "HDL": "Lipid Panel",
    "Trig": "Lipid Panel",
    "LDL": "Lipid Panel",
    "nonHDL": "Lipid Panel",
    "TC/HDL": "Lipid Panel",
    "Alb": "ACR",
    "Creat": "ACR",
    "ACR": "ACR",
}
TEST_NAMES = {
    "HbA1c": "Haemoglobin A1c",
    "CRP": "C-reactive protein",
    "Chol": "Total cholesterol",
    "HDL": "HDL cholesterol",
    "Trig": "Triglycerides",
    "LDL": "LDL cholesterol (calculated)",
    "nonHDL": "Non-HDL cholesterol (calculated)",
    "TC/HDL": "Cholesterol/HDL ratio (calculated)",
    "Alb": "Albumin, urine",
    "Creat": "Creatinine, urine",
    "ACR": "Albumin/creatinine ratio, urine",
}
_NUMBER = re.compile(r"(?P<cmp>[<>]=?)?\s*(?P<num>[0-9]{1,6}(?:[.,][0-9]{1,4})?)")


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


def _measured_value(text: str, field: str) -> tuple[str, str]:
    """R.4 -> (value, HL7 value type): a number, ``<``/``>`` and a number, or ``---``."""
    value = text.strip()
    if value == NOT_MEASURABLE:
        return value, "ST"
    match = _NUMBER.fullmatch(value)
    if match is None:
        raise _fail(field, "value is not a number, '<'/'>' and a number, or '---'", text)
    number = match["num"].replace(",", ".")  # a decimal comma is still a decimal point
    comparator = match["cmp"] or ""
    return comparator + number, ("SN" if comparator else "NM")


def _flags(text: str, field: str) -> tuple[str, ...]:
    flag = text.strip()
    if not flag:
        return ()
    if flag not in ABNORMAL_FLAGS:
        raise _fail(field, f"abnormal flag is not one of {sorted(ABNORMAL_FLAGS)}", text)
    return (flag,)


def _record(kind: str, fields: Mapping[int, str | tuple[str, ...]]) -> Record:
    """A record from {standard field number: text or components}; gaps become empty fields."""
    last = max(fields)
    built: list[Field] = []
    for number in range(2, last + 1):
        value = fields.get(number, "")
        built.append(((value,) if isinstance(value, str) else value,))
    return Record(kind, tuple(built))


@dataclass(frozen=True, slots=True)
class _Patient:
    patient_id: str = ""
    control_level: str = ""
    control_lot: str = ""


@dataclass(frozen=True, slots=True)
class _Order:
    specimen_id: str = ""
    cartridge_lot: str = ""


class Afinion2Profile:
    """The Afinion 2 dialect (see the module docstring for the field map and its sources)."""

    key: str = "astm_afinion2"
    name: str = "Abbott Afinion 2"
    description: str = (
        "Abbott Afinion 2 point-of-care analyser (HbA1c, CRP, lipid panel, ACR) over ASTM "
        "E1381/E1394; operator, cartridge lot and controls (H.12 = Q) mapped"
    )
    #: the stored trace ends its frame with CR only; take what the analyser sends
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
        if processing not in PROCESSING_IDS:
            raise _fail("H.12", "processing ID is neither P (patient) nor Q (control)", processing)
        is_qc = processing == "Q"
        serial = header.value(5, 0, 2).strip()
        sent_at = _when(header.value(14), "H.14")
        patient, order = _Patient(), _Order()
        found: list[Observation] = []
        for record in records[1:]:
            if record.type == "H":
                raise _fail("H", "a second H record inside one message", header.value(5))
            if record.type == "L":
                break
            if record.type == "P":
                patient, order = self._patient(record, is_qc), _Order()
            elif record.type == "O":
                order = _Order(
                    specimen_id=record.value(3).strip() or record.value(4).strip(),
                    cartridge_lot=record.value(24, 0, 1).strip() or record.value(24).strip(),
                )
            elif record.type == "R":
                found.append(
                    self._result(record, instrument_id, serial, sent_at, is_qc, patient, order)
                )
        return tuple(found)

    @staticmethod
    def _patient(record: Record, is_qc: bool) -> _Patient:
        if is_qc:
            return _Patient(
                control_level=record.value(4).strip(), control_lot=record.value(4, 0, 1).strip()
            )
        return _Patient(patient_id=record.value(4).strip() or record.value(3).strip())

    @staticmethod
    def _result(
        record: Record,
        instrument_id: str,
        serial: str,
        sent_at: datetime | None,
        is_qc: bool,
        patient: _Patient,
        order: _Order,
    ) -> Observation:
        code = universal_test_code(record, 3)
        if not code:
            raise _fail("R.3", "result has no test code", record.value(3))
        value, value_type = _measured_value(record.value(4), "R.4")
        status = record.value(9).strip() or "F"
        if status not in RESULT_STATUSES:
            raise _fail("R.9", f"result status is not one of {sorted(RESULT_STATUSES)}", status)
        if value == NOT_MEASURABLE:
            status = "X"
        return Observation(
            instrument_id=instrument_id,
            test_code=code,
            value=value,
            value_type=value_type,
            unit=record.value(5).strip(),
            reference_range=record.value(6).strip(),
            abnormal_flags=_flags(record.value(7), "R.7"),
            method=Method.MEASURED,
            performed_at=_when(record.value(13), "R.13") or sent_at,
            operator_id=record.value(11).strip(),
            specimen_id=order.specimen_id,
            patient_id=patient.patient_id,
            result_status=status,
            instrument_serial=serial,
            test_name=TEST_NAMES.get(code, ""),
            is_qc=is_qc,
            control_lot=patient.control_lot,
            control_level=patient.control_level,
            extra=(("reagent_lot", order.cartridge_lot),) if order.cartridge_lot else (),
        )

    def simulated_message(
        self, sample: SimSample, delimiters: Delimiters = DEFAULT_DELIMITERS
    ) -> list[Record]:
        """The records an Afinion 2 sends for ``sample``: H, P, then O and its R per assay, L."""
        stamp = format_astm_datetime(sample.performed_at)
        records = [
            _record(
                "H",
                {
                    2: delimiters.definition,
                    5: (SENDER_NAME, "", sample.instrument_serial),
                    12: "Q" if sample.is_qc else "P",
                    13: "1",
                    14: stamp,
                },
            ),
            _record(
                "P",
                {
                    2: "1",
                    4: (sample.control_level, sample.control_lot)
                    if sample.is_qc
                    else sample.patient_id,
                    9: "U",
                },
            ),
        ]
        by_assay: dict[str, list[tuple[str, str, str]]] = {}
        for code, value, unit in sample.values:
            if code not in ASSAY_OF:
                raise LocalProtocolError(f"the Afinion 2 does not measure {code!r}", field="R.3")
            by_assay.setdefault(ASSAY_OF[code], []).append((code, value, unit))
        for number, (assay, results) in enumerate(by_assay.items(), start=1):
            records.append(
                _record(
                    "O",
                    {
                        2: str(number),
                        4: sample.specimen_id,
                        5: ("", "", "", assay),
                        12: "N",
                        16: ("", "O"),
                        24: ("", _cartridge_lot(assay, sample.performed_at)),
                        26: "F",
                    },
                )
            )
            for sequence, (code, value, unit) in enumerate(results, start=1):
                flag = value[0] if value[:1] in ("<", ">") else ""
                records.append(
                    _record(
                        "R",
                        {
                            2: str(sequence),
                            3: ("", "", "", code),
                            4: value,
                            5: unit,
                            7: flag,
                            9: "F",
                            11: sample.operator_id,
                            13: stamp,
                        },
                    )
                )
        records.append(_record("L", {2: "1", 3: "N"}))
        return records

    def simulated_sample(
        self, rng: random.Random, *, operator_id: str, qc: bool, patient_id: str, now: datetime
    ) -> SimSample:
        """One cartridge run: a random assay, patient values or a control near its target."""
        if now.tzinfo is None:
            raise LocalProtocolError("now must be timezone-aware", field="now")
        assay = rng.choice(("HbA1c", "CRP", "Lipid Panel", "ACR"))
        level = rng.choice(("C I", "C II")) if qc else ""
        values = _CONTROL_VALUES[assay](rng, level) if qc else _PATIENT_VALUES[assay](rng)
        return SimSample(
            specimen_id=str(rng.randint(1, 9999)),
            patient_id="" if qc else patient_id,
            operator_id=operator_id,
            performed_at=now.astimezone(UTC).replace(microsecond=0),
            values=values,
            is_qc=qc,
            control_lot=f"{rng.randint(10200000, 10299999)}" if qc else "",
            control_level=level,
            instrument_serial=f"AF2{rng.randint(0, 9999999):07d}",
        )


def _cartridge_lot(assay: str, performed_at: datetime) -> str:
    """A plausible 8-digit cartridge lot, stable for one assay and month."""
    prefix = {"HbA1c": "22", "CRP": "23", "Lipid Panel": "24", "ACR": "25"}.get(assay, "29")
    return f"10{prefix}{performed_at:%y%m}"


Values = tuple[tuple[str, str, str], ...]


def _hba1c(rng: random.Random, centre: float | None = None) -> Values:
    percent = rng.gauss(centre, centre * 0.02) if centre is not None else rng.uniform(4.2, 13.0)
    if rng.random() < 0.5:  # sites report IFCC mmol/mol or NGSP %
        mmol = round((percent - 2.15) * 10.929)
        return (("HbA1c", str(mmol) if mmol <= 140 else ">140", "mmol/mol"),)
    if centre is None and rng.random() < 0.03:
        return (("HbA1c", ">15.0", "%"),)
    return (("HbA1c", f"{percent:.1f}", "%"),)


def _crp(rng: random.Random, centre: float | None = None) -> Values:
    if centre is None:
        if rng.random() < 0.4:
            return (("CRP", "<5", "mg/L"),)
        value = rng.choice((rng.uniform(5, 40), rng.uniform(40, 200), 250.0))
    else:
        value = rng.gauss(centre, centre * 0.05)
    return (("CRP", f"{value:.0f}" if value <= 200 else ">200", "mg/L"),)


def _lipids(rng: random.Random, centre: tuple[float, float, float] | None = None) -> Values:
    if centre is None:
        chol, hdl, trig = rng.uniform(2.8, 9.5), rng.uniform(0.6, 2.5), rng.uniform(0.5, 6.5)
    else:
        chol, hdl, trig = (rng.gauss(c, c * 0.03) for c in centre)
    hdl = min(hdl, chol - 0.3)
    ldl = chol - hdl - trig / 2.2  # Friedewald in mmol/L; not valid above 4.5 mmol/L TG
    return (
        ("Chol", f"{chol:.2f}", "mmol/L"),
        ("HDL", f"{hdl:.2f}", "mmol/L"),
        ("Trig", f"{trig:.2f}", "mmol/L"),
        ("LDL", f"{ldl:.2f}" if trig <= 4.5 and ldl > 0 else NOT_MEASURABLE, "mmol/L"),
        ("nonHDL", f"{chol - hdl:.2f}", "mmol/L"),
        ("TC/HDL", f"{chol / hdl:.1f}", ""),
    )


def _acr(rng: random.Random, centre: tuple[float, float] | None = None) -> Values:
    if centre is None:
        albumin, creatinine = rng.uniform(2.0, 190.0), rng.uniform(1.5, 25.0)
    else:
        albumin, creatinine = (rng.gauss(c, c * 0.04) for c in centre)
    if albumin < 3.0:
        return (
            ("Alb", "<3", "mg/L"),
            ("Creat", f"{creatinine:.1f}", "mmol/L"),
            ("ACR", f"<{3.0 / creatinine:.1f}", "mg/mmol"),
        )
    return (
        ("Alb", f"{albumin:.0f}", "mg/L"),
        ("Creat", f"{creatinine:.1f}", "mmol/L"),
        ("ACR", f"{round(albumin) / round(creatinine, 1):.1f}", "mg/mmol"),
    )


_PATIENT_VALUES: dict[str, Callable[[random.Random], Values]] = {
    "HbA1c": lambda rng: _hba1c(rng),
    "CRP": lambda rng: _crp(rng),
    "Lipid Panel": lambda rng: _lipids(rng),
    "ACR": lambda rng: _acr(rng),
}
#: control targets per level (Afinion controls C I and C II)
_CONTROL_VALUES: dict[str, Callable[[random.Random, str], Values]] = {
    "HbA1c": lambda rng, level: _hba1c(rng, 5.4 if level == "C I" else 9.6),
    "CRP": lambda rng, level: _crp(rng, 24.0 if level == "C I" else 80.0),
    "Lipid Panel": lambda rng, level: _lipids(
        rng, (4.1, 1.0, 1.3) if level == "C I" else (6.7, 1.8, 2.5)
    ),
    "ACR": lambda rng, level: _acr(rng, (22.0, 5.0) if level == "C I" else (120.0, 14.0)),
}

PROFILE: AstmProfile = Afinion2Profile()
