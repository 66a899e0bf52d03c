"""Siemens CLINITEK Status+ urine strip reader: an ASTM E1394 dialect for it, mapped.

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
* H.12 is not read here: a message not marked ``P`` maps all the same, and the gateway's
  processing-ID rule keeps it as test data, never sent to the LIS.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from drivers.analysers.astm_base import (
    AstmProfile,
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
from drivers.model import Method, Observation
from drivers.protocols.astm.records import Record

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
_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .+]{0,23}|[<>]=?[0-9]{1,4}(?:\.[0-9]{1,3})?")
_NUMBER = re.compile(r"(?P<cmp>[<>]=?)?(?P<num>[0-9]{1,4}(?:\.[0-9]{1,3})?)")


def _strip_value(text: str, field: str) -> tuple[str, str]:
    """R.4 -> (value, HL7 value type): a category (``Neg``, ``2+``), a number, ``>=`` number."""
    value = text.strip()
    if _VALUE.fullmatch(value) is None:
        problem = "value is not a strip category, a number or '<=', '>=' a number"
        raise field_error(field, problem, text)
    number = _NUMBER.fullmatch(value)
    if number is None:
        return value, "ST"
    return value, ("SN" if number["cmp"] else "NM")


_RULES = ResultRules(
    read_value=_strip_value,
    flags=ABNORMAL_FLAGS,
    statuses=RESULT_STATUSES,
    test_names=TEST_NAMES,
    flag_problem="abnormal flag is not a LIS2-A2 flag",
    status_problem="result status is neither F (final) nor C (correction)",
)


class ClinitekStatusProfile:
    """The CLINITEK Status+ dialect (see the module docstring: the layout is ours)."""

    key: str = "astm_clinitek_status"
    name: str = "Siemens CLINITEK Status+"
    description: str = (
        "Siemens CLINITEK Status+ urine strip reader over ASTM E1381/E1394 (layout per LIS2-A2, "
        "verify against site firmware); colour/clarity as visual readings, Chek-Stix controls"
    )
    qc_recognition: str = (
        "a control run has O.12 = Q; its level (Positive, Negative) is P.3 and its lot P.3.2"
    )
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
        for record in message_body(records):
            if record.type == "P":
                # P.3 is the patient ID, or for a control <level>^<lot>: the O record decides
                context = ResultContext(
                    patient_id=record.value(3).strip(), control_lot=record.value(3, 0, 1).strip()
                )
            elif record.type == "O":
                context = _order(context, record)
            elif record.type == "R":
                found.append(_result(record, context, source))
        return tuple(found)


def _order(context: ResultContext, record: Record) -> ResultContext:
    action = record.value(12).strip()
    if action not in ("", "N", "Q"):
        raise field_error("O.12", "action code is not N (patient) or Q (control)", action)
    # a control's level came where the patient ID goes (P.3); its lot is P.3.2
    return ResultContext(
        patient_id=context.patient_id,
        control_level=context.patient_id,
        control_lot=context.control_lot,
        specimen_id=record.value(3).strip() or record.value(4).strip(),
        is_qc=action == "Q",
    )


def _result(record: Record, context: ResultContext, source: MessageSource) -> Observation:
    found = read_result(record, _RULES, context, source)
    return replace(found, method=Method.VISUAL) if found.test_code in VISUAL_CODES else found


PROFILE: AstmProfile = ClinitekStatusProfile()
