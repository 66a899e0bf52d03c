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
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

from drivers.analysers.astm_base import (
    AstmProfile,
    SimSample,
    comparator_number,
    format_astm_datetime,
)
from drivers.analysers.astm_messages import (
    MessageSource,
    ResultContext,
    ResultRules,
    message_body,
    message_header,
    processing_id,
    read_result,
)
from drivers.analysers.astm_simulation import (
    TERMINATOR,
    build_record,
    comparator_flag,
    patient_or_control,
    require_aware,
    simulated_header,
    simulated_results,
)
from drivers.errors import LocalProtocolError
from drivers.model import Observation
from drivers.protocols.astm.records import DEFAULT_DELIMITERS, Delimiters, Record

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


def _measured_value(text: str, field: str) -> tuple[str, str]:
    """R.4 -> (value, HL7 value type): a number, ``<``/``>`` and a number, or ``---``."""
    if text.strip() == NOT_MEASURABLE:
        return NOT_MEASURABLE, "ST"
    problem = "value is not a number, '<'/'>' and a number, or '---'"
    return comparator_number(text, field=field, problem=problem)


_RULES = ResultRules(
    read_value=_measured_value,
    flags=ABNORMAL_FLAGS,
    statuses=RESULT_STATUSES,
    test_names=TEST_NAMES,
)


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
        header = message_header(records)
        problem = "processing ID is neither P (patient) nor Q (control)"
        is_qc = processing_id(header, PROCESSING_IDS, problem) == "Q"
        source = MessageSource.read(instrument_id, header)
        context = ResultContext(is_qc=is_qc)
        found: list[Observation] = []
        for record in message_body(records):
            if record.type == "P":
                context = _patient(record, is_qc)
            elif record.type == "O":
                lot = record.value(24, 0, 1).strip() or record.value(24).strip()
                context = replace(
                    context,
                    specimen_id=record.value(3).strip() or record.value(4).strip(),
                    extra=(("reagent_lot", lot),) if lot else (),
                )
            elif record.type == "R":
                found.append(_result(record, context, source))
        return tuple(found)

    def simulated_message(
        self, sample: SimSample, delimiters: Delimiters = DEFAULT_DELIMITERS
    ) -> list[Record]:
        """The records an Afinion 2 sends for ``sample``: H, P, then O and its R per assay, L."""
        stamp = format_astm_datetime(sample.performed_at)
        records = [
            simulated_header(
                delimiters,
                (SENDER_NAME, "", sample.instrument_serial),
                stamp,
                processing="Q" if sample.is_qc else "P",
                version="1",
            ),
            build_record("P", {2: "1", 4: patient_or_control(sample), 9: "U"}),
        ]
        by_assay: dict[str, list[tuple[str, str, str]]] = {}
        for code, value, unit in sample.values:
            if code not in ASSAY_OF:
                raise LocalProtocolError(f"the Afinion 2 does not measure {code!r}", field="R.3")
            by_assay.setdefault(ASSAY_OF[code], []).append((code, value, unit))
        for number, (assay, results) in enumerate(by_assay.items(), start=1):
            records.append(
                build_record(
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
            records += simulated_results(
                results, comparator_flag, operator_id=sample.operator_id, stamp=stamp
            )
        records.append(TERMINATOR)
        return records

    def simulated_sample(
        self, rng: random.Random, *, operator_id: str, qc: bool, patient_id: str, now: datetime
    ) -> SimSample:
        """One cartridge run: a random assay, patient values or a control near its target."""
        require_aware(now)
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


def _patient(record: Record, is_qc: bool) -> ResultContext:
    """P.4: the patient ID (P.3 as a fallback), or for a control ``<level>^<control lot>``."""
    if is_qc:
        level, lot = record.value(4).strip(), record.value(4, 0, 1).strip()
        return ResultContext(is_qc=True, control_level=level, control_lot=lot)
    return ResultContext(patient_id=record.value(4).strip() or record.value(3).strip())


def _result(record: Record, context: ResultContext, source: MessageSource) -> Observation:
    found = read_result(record, _RULES, context, source)
    # a value that cannot be measured or calculated: the test could not be done
    return replace(found, result_status="X") if found.value == NOT_MEASURABLE else found


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
