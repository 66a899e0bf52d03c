"""Siemens DCA Vantage (HbA1c, urine albumin/creatinine): its ASTM E1394 dialect, mapped.

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
  (service mode: debugging data). A ``D`` message maps like any other; the gateway's
  processing-ID rule keeps it as test data (or in quarantine), never sent to the LIS.
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

import re
from collections.abc import Sequence
from dataclasses import replace

from drivers.analysers.astm_base import (
    AstmProfile,
    comparator_number,
    field_error,
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
    qc_recognition: str = (
        "a control run has O.12 = Q; its level (Normal/Abnormal, Low/High) is P.3, its lot P.3.2"
    )
    #: it sends a whole message in one frame longer than E1381's 247 bytes
    lenient: bool = True
    encoding: str = "latin-1"

    def observations(
        self, instrument_id: str, records: Sequence[Record]
    ) -> tuple[Observation, ...]:
        """Map one H..L message to observations, or raise ``RemoteProtocolError``."""
        header = message_header(records)
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


PROFILE: AstmProfile = DcaVantageProfile()
