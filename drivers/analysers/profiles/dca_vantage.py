"""Siemens DCA Vantage (HbA1c, urine albumin/creatinine): its ASTM E1394 dialect both ways.

Sources. Siemens' "DCA Vantage Analyzer Host Computer Communications Link" (17306; Rev. D 2011
and Rev. E 2012 exist) is the vendor document; only its title and contents pages could be read
here. The field map below comes from (a) the analyser's message in the corpus
(``siemens_dca_vantage__senaite.astm.txt``), (b) the field notes senaite.astm publishes for its
DCA Vantage instrument, which quote that document (facts only), and (c) the DCA Vantage
Operator's Guide, appendix G (ASTM E1381/E1394 over serial or Ethernet; a blank patient ID is
allowed in ASTM). What the message looks like::

    H|\\^&|||DCA VANTAGE^04.04.00.00^S067337|||||||P||20240820151746
    P|1|BU24R554
    O|1||660^0090||||||||||||||||||||||F
    R|1|^^^Alb|63.7|mg/L||||F|||20240820151030
    C|1|I|1.000^0.0 mg/L|G
    R|2|^^^Crt|230.8|mg/dL||||F|||20240820151030
    C|1|I|1.000^0.0 mg/dL|G
    R|3|^^^Ratio|27.6|mg/g||||F|||20240820151030
    L|1|N

* H.5 = ``DCA VANTAGE^<software version>^<serial number>``; H.12 ``P`` (production) or ``D``
  (service mode: debugging data, not mapped: such a message is refused so it is quarantined).
* P.3 = practice-assigned patient ID (may be blank).
* O.4 = ``<sample sequence number 001-999>^<reagent cartridge lot>``; O.12 = ``Q`` when a
  control was run; O.26 report type ``F`` final or ``C`` correction.
* R.3.4 = ``HbA1c``, ``Alb``, ``Crt`` or ``Ratio``; R.4 value (``<``/``>`` outside the range);
  R.7 = ``< > H L``; R.9 = ``F`` or ``C``; R.11 = operator ID (when operator entry is on);
  R.12 = time the test started (R.13 is read too, should a firmware send it).
* A C record after a result carries the user correction ``<slope>^<offset> <unit>`` and, after
  HbA1c, ``^<NGSP|IFCC primary unit>^<eAG>``: kept in ``extra``. C records after the order
  (GFR inputs, free comments that may hold patient data) are not mapped.

Assumption, not confirmed from the vendor document: for controls the control's level and lot
are carried where the patient ID goes, as ``P.3 = <level>^<control lot>``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from drivers.analysers.astm_base import (
    AstmProfile,
    SimSample,
    comparator_number,
    field_error,
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

SENDER_NAME = "DCA VANTAGE"
SOFTWARE_VERSION = "04.04.00.00"
ABNORMAL_FLAGS = frozenset({"<", ">", "H", "L"})
RESULT_STATUSES = frozenset({"F", "C"})
TEST_NAMES = {
    "HbA1c": "Haemoglobin A1c",
    "Alb": "Albumin, urine",
    "Crt": "Creatinine, urine",
    "Ratio": "Albumin/creatinine ratio, urine",
}
#: C.4 components after a result, in order, and the ``extra`` keys they become
CORRECTION_KEYS = ("correction_slope", "correction_offset", "primary_unit", "eag")
_SEQUENCE = re.compile(r"[0-9]{1,4}")


def _measured_value(text: str, field: str) -> tuple[str, str]:
    """R.4 -> (value, HL7 value type): a number, or ``<``/``>`` and a number."""
    problem = "value is not a number or '<'/'>' and a number"
    return comparator_number(text, field=field, problem=problem)


_RULES = ResultRules(
    read_value=_measured_value,
    flags=ABNORMAL_FLAGS,
    statuses=RESULT_STATUSES,
    test_names=TEST_NAMES,
    status_problem="result status is neither F (final) nor C (correction)",
    time_fields=(13, 12),  # R.12 is when the test started; R.13 should a firmware send it
)


class DcaVantageProfile:
    """The DCA Vantage dialect (see the module docstring for the field map and its sources)."""

    key: str = "astm_dca_vantage"
    name: str = "Siemens DCA Vantage"
    description: str = (
        "Siemens DCA Vantage (HbA1c, urine albumin/creatinine) over ASTM E1381/E1394; "
        "operator, reagent lot, user correction and controls (O.12 = Q) mapped"
    )
    #: it sends a whole message in one frame longer than E1381's 247 bytes
    lenient: bool = True
    encoding: str = "latin-1"

    def observations(
        self, instrument_id: str, records: Sequence[Record]
    ) -> tuple[Observation, ...]:
        """Map one H..L message to observations, or raise ``RemoteProtocolError``."""
        header = message_header(records)
        processing_id(header, ("P",), "not a production message (service mode data)")
        source = MessageSource.read(instrument_id, header)
        context = ResultContext()
        found: list[Observation] = []
        after_result = False
        for record in message_body(records):
            if record.type == "C" and after_result:
                found[-1] = _with_correction(found[-1], record)
            elif record.type == "P":
                # P.3 is the patient ID, or for a control <level>^<lot>: the O record decides
                context = ResultContext(
                    patient_id=record.value(3).strip(), control_lot=record.value(3, 0, 1).strip()
                )
            elif record.type == "O":
                context = _order(context, record)
            elif record.type == "R":
                found.append(read_result(record, _RULES, context, source))
            after_result = record.type == "R" or (record.type == "C" and after_result)
        return tuple(found)

    def simulated_message(
        self, sample: SimSample, delimiters: Delimiters = DEFAULT_DELIMITERS
    ) -> list[Record]:
        """The records a DCA Vantage sends for ``sample``: H, P, O, R (+C correction), L."""
        stamp = format_astm_datetime(sample.performed_at)
        for code, _, _ in sample.values:
            if code not in TEST_NAMES:
                raise LocalProtocolError(f"the DCA Vantage does not measure {code!r}", field="R.3")
        records = [
            simulated_header(
                delimiters, (SENDER_NAME, SOFTWARE_VERSION, sample.instrument_serial), stamp
            ),
            build_record("P", {2: "1", 3: patient_or_control(sample)}),
            build_record(
                "O",
                {
                    2: "1",
                    4: (sample.specimen_id, _reagent_lot(sample)),
                    12: "Q" if sample.is_qc else "",
                    26: "F",
                },
            ),
        ]
        results = simulated_results(
            sample.values,
            comparator_flag,
            operator_id=sample.operator_id,
            stamp=stamp,
            time_field=12,
        )
        for result, (code, _, unit) in zip(results, sample.values, strict=True):
            records.append(result)
            if code == "HbA1c":
                primary = "IFCC" if unit == "mmol/mol" else "NGSP"
                records.append(
                    build_record(
                        "C", {2: "1", 3: "I", 4: ("1.000", f"0.0 {unit}", primary), 5: "G"}
                    )
                )
            elif code != "Ratio":
                records.append(
                    build_record("C", {2: "1", 3: "I", 4: ("1.000", f"0.0 {unit}"), 5: "G"})
                )
        records.append(TERMINATOR)
        return records

    def simulated_sample(
        self, rng: random.Random, *, operator_id: str, qc: bool, patient_id: str, now: datetime
    ) -> SimSample:
        """One cartridge: HbA1c or the albumin/creatinine panel, patient or control."""
        require_aware(now)
        hba1c = rng.random() < 0.5
        if hba1c:
            level = rng.choice(("Normal", "Abnormal")) if qc else ""
            values = _hba1c(rng, {"Normal": 5.4, "Abnormal": 9.8}.get(level))
        else:
            level = rng.choice(("Low", "High")) if qc else ""
            values = _acr(rng, {"Low": (25.0, 90.0), "High": (160.0, 180.0)}.get(level))
        return SimSample(
            specimen_id=f"{rng.randint(1, 999):03d}",
            patient_id="" if qc else patient_id,
            operator_id=operator_id,
            performed_at=now.astimezone(UTC).replace(microsecond=0),
            values=values,
            is_qc=qc,
            control_lot=f"{rng.randint(10000, 99999)}" if qc else "",
            control_level=level,
            instrument_serial=f"S0{rng.randint(0, 99999):05d}",
        )


def _order(context: ResultContext, record: Record) -> ResultContext:
    sequence = record.value(4).strip()
    if sequence and _SEQUENCE.fullmatch(sequence) is None:
        raise field_error("O.4", "sample sequence number is not 1-4 digits", record.value(4))
    action = record.value(12).strip()
    if action not in ("", "Q"):
        raise field_error("O.12", "action code is neither empty nor Q (control)", action)
    is_qc = action == "Q"
    reagent_lot = record.value(4, 0, 1).strip()
    return ResultContext(
        patient_id="" if is_qc else context.patient_id,
        control_level=context.patient_id if is_qc else "",
        control_lot=context.control_lot if is_qc else "",
        specimen_id=record.value(3).strip() or sequence,
        extra=(("reagent_lot", reagent_lot),) if reagent_lot else (),
        is_qc=is_qc,
    )


def _with_correction(observation: Observation, comment: Record) -> Observation:
    parts = (comment.value(4, 0, n).strip() for n in range(len(CORRECTION_KEYS)))
    extra = tuple((key, part) for key, part in zip(CORRECTION_KEYS, parts, strict=True) if part)
    return replace(observation, extra=observation.extra + extra)


def _reagent_lot(sample: SimSample) -> str:
    """A plausible 4-digit cartridge lot, stable for one test and month."""
    test = "1" if any(code == "HbA1c" for code, _, _ in sample.values) else "2"
    return f"{sample.performed_at.year % 10}{sample.performed_at.month:02d}{test}"


Values = tuple[tuple[str, str, str], ...]


def _hba1c(rng: random.Random, centre: float | None) -> Values:
    percent = rng.gauss(centre, centre * 0.02) if centre is not None else rng.uniform(4.0, 13.5)
    if centre is None and rng.random() < 0.03:
        percent = rng.choice((2.0, 15.0))
    if rng.random() < 0.5:  # IFCC primary reporting unit
        mmol = round((percent - 2.15) * 10.929)
        text = "<4" if mmol < 4 else ">130" if mmol > 130 else str(mmol)
        return (("HbA1c", text, "mmol/mol"),)
    text = "<2.5" if percent < 2.5 else ">14.0" if percent > 14.0 else f"{percent:.1f}"
    return (("HbA1c", text, "%"),)


def _acr(rng: random.Random, centre: tuple[float, float] | None) -> Values:
    """Albumin mg/L, creatinine and the ratio, in conventional or SI units."""
    if centre is None:
        albumin, creatinine_mg_dl = rng.uniform(3.0, 320.0), rng.uniform(20.0, 400.0)
    else:
        albumin, creatinine_mg_dl = (rng.gauss(c, c * 0.04) for c in centre)
    si = rng.random() < 0.5
    creatinine = creatinine_mg_dl * 0.0884 if si else creatinine_mg_dl
    ratio = albumin / creatinine if si else albumin / creatinine_mg_dl * 100
    units = ("mmol/L", "mg/mmol") if si else ("mg/dL", "mg/g")
    if albumin < 5.0:
        alb_text, ratio_text = "<5", f"<{5.0 / creatinine * (1 if si else 100):.1f}"
    elif albumin > 300.0:
        alb_text, ratio_text = ">300", f">{300.0 / creatinine * (1 if si else 100):.1f}"
    else:
        alb_text, ratio_text = f"{albumin:.1f}", f"{ratio:.1f}"
    return (
        ("Alb", alb_text, "mg/L"),
        ("Crt", f"{creatinine:.2f}" if si else f"{creatinine:.1f}", units[0]),
        ("Ratio", ratio_text, units[1]),
    )


PROFILE: AstmProfile = DcaVantageProfile()
