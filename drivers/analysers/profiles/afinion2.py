"""Abbott Afinion 2 (HbA1c, CRP, lipid panel, ACR): its ASTM E1394 dialect, mapped.

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

* H.5 = ``Afinion 2 Analyzer^^<device ID>``; H.12 processing ID: ``P`` patient, ``Q`` control
  (anything else maps as patient data, which the gateway's processing-ID rule keeps as test
  data, never sent to the LIS).
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

from collections.abc import Sequence
from dataclasses import replace

from drivers.analysers.astm_base import (
    AstmProfile,
    comparator_number,
    header_processing_id,
)
from drivers.analysers.astm_messages import (
    MessageSource,
    ResultContext,
    ResultRules,
    message_body,
    message_header,
    read_result,
)
from drivers.model import Observation
from drivers.protocols.astm.records import Record

#: R.7 values the Afinion 2 uses (senaite.astm notes on the Afinion 2 interface).
ABNORMAL_FLAGS = frozenset({"<", ">", "L", "H", "LL", "HH", "!"})
RESULT_STATUSES = frozenset({"F", "C", "X"})
NOT_MEASURABLE = "---"

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
    qc_recognition: str = (
        "a control run has H.12 = Q; its level and control lot are P.4 (level^lot)"
    )
    #: the stored trace ends its frame with CR only; take what the analyser sends
    lenient: bool = True
    encoding: str = "latin-1"

    def observations(
        self, instrument_id: str, records: Sequence[Record]
    ) -> tuple[Observation, ...]:
        """Map one H..L message to observations, or raise ``RemoteProtocolError``."""
        header = message_header(records)
        # Q marks a control run; T and D (test/debug) map as patient data, which the gateway
        # then keeps as test data (its processing-ID rule)
        is_qc = header_processing_id(header) == "Q"
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


PROFILE: AstmProfile = Afinion2Profile()
