"""Sysmex XN-L (XN-350/450/550) and XP (XP-100/300) haematology: ASTM mapping.

Sources. The vendor documents ("XN-L series ASTM Host Interface Specifications", R315005, and
"XP Series ASTM Communication Specifications", R312006) are published, but the copies the search
tools could reach showed only their first pages (revision history and contents). Facts taken
from what could be read: the revision history of XN R314185/R315005 (analysis result type and
dilution in the parameter ID, panic-limit flags, rerun/reflex status in R.9, research items named
``...&`` and ``..._RESEARCH``); an integration specification written from Sysmex's "XN-L LIS
Interface Implementation Guide" (1273-MKT, rev. 3) in an open project (field positions, IP
message names, ``----`` for an analysis error, ``QC-`` sample numbers); LIS2-A2 field numbering;
and the captured messages in the shared corpus (XN-550 patient and QC, XP-100) plus XP-300
captures published in open projects (operator name padded to 15 characters in R.11).

Layout (standard field numbers, the record type is field 1):

* H.5 sender: XN ``    XN-550^00-24^22723^^^^BD634545`` (model^software^serial^^^^PS code);
  XP ``XP-300^00-16^^^^A1573^AP807129`` (the serial is the 6th component).
* P.5 patient ID on the XN (P.3/P.4 are empty); the XP sends a bare ``P|1`` (no patient ID).
* O.4 ``rack^position^sample number^attribute``; the sample number is right-justified with
  spaces (22 characters on the XN, 15 on the XP) and is stripped here. O.12 action code:
  ``N`` patient, ``Q`` quality control.
* R.3 ``^^^^CODE^dilution[^^^^W]``; R.4 value (the XP pads it with spaces, ``----`` is an
  analysis error, ``++++`` over the display range); R.5 unit; R.7 flags (``N L H W A > LL HH``);
  R.9 status (``F``; ``P`` rerun/reflex pending; empty on the XP, read as ``F``); R.11 operator;
  R.13 date and time of the analysis (analyser local time).

QC is recognised by O.12 = ``Q`` or a ``QC-`` sample number. The number after ``QC-`` is taken
as the control lot; the XN CHECK level is read from its last two digits (01/02/03 = low, normal,
high): an inference from the corpus QC run (``...03`` carries level-3 values), not a documented
rule, so the level stays empty when the suffix is anything else. The XP QC marking is not
documented in anything readable; the same rule is assumed.

Not mapped to observations, on purpose:

* image references (``SCAT_...``, ``DIST_...``: PNG file paths on the IPU, no value);
* research items (codes ending in ``&`` or ``_RESEARCH``): not reportable by the vendor's terms;
* IP messages (codes without a dilution whose value is empty, ends in ``?``, or is a known
  abnormal/judgement message): they are flags about the sample, not values. The positive ones
  (flag ``A``) are attached to every observation of the sample as ``("ip_message", "...")``,
  with the Q-flag value when there is one (``Blasts/Abn_Lympho?=120``); negative suspect
  messages carry no finding and are dropped.

Any other R record, known or not, becomes an observation: an unknown code is held as unmapped by
the pipeline, never silently dropped. A decimal comma (a locale setting) is read as a point and
the sent text kept as ``("value_text", ...)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from drivers.analysers.astm_base import (
    Extra,
    field_error,
    normalise_range,
    normalise_value,
    parse_astm_datetime,
    repeated_flags,
    universal_test_code,
)
from drivers.analysers.astm_messages import (
    SampleResults,
    observations_by_sample,
)
from drivers.model import Method, Observation
from drivers.protocols.astm.records import Record

#: Abnormal and judgement IP messages of the XN-L (values are empty, R.7 is ``A``).
IP_MESSAGES = frozenset(
    {
        "WBC_Abn_Scattergram", "Neutropenia", "Neutrophilia", "Lymphopenia", "Lymphocytosis",
        "Leukocytopenia", "Leukocytosis", "Monocytosis", "Eosinophilia", "Basophilia",
        "IG_Present", "RBC_Abn_Distribution", "Dimorphic_Population", "Anisocytosis",
        "Microcytosis", "Macrocytosis", "Hypochromia", "Anemia", "Erythrocytosis",
        "RET_Abn_Scattergram", "Reticulocytosis", "PLT_Abn_Scattergram", "PLT_Abn_Distribution",
        "Thrombocytopenia", "Thrombocytosis", "Positive_Diff", "Positive_Morph",
        "Positive_Count", "Error_Func", "Error_Result",
    }
)  # fmt: skip
_IP_PREFIXES = ("ACTION_MESSAGE_",)
_IMAGE_PREFIXES = ("SCAT_", "DIST_")
_RESEARCH_SUFFIXES = ("&", "_RESEARCH")
_QC_NUMBER = re.compile(r"QC-(\S+)", re.IGNORECASE)
#: XN CHECK level by the last two digits of the lot after ``QC-`` (see the module docstring)
CHECK_LEVELS = {"01": "low", "02": "normal", "03": "high"}


# ---------------------------------------------------------------------------------------------
# Decoding: records of one message -> observations
# ---------------------------------------------------------------------------------------------


def _first(record: Record, number: int) -> str:
    """First component of the first repeat of a field, stripped of Sysmex's space padding."""
    return record.value(number).strip()


def _component(record: Record, number: int, index: int) -> str:
    return record.value(number, 0, index).strip()


@dataclass(slots=True)
class _Sample(SampleResults):
    """A sample, and the positive IP messages its results carried."""

    ip_messages: list[str] = field(default_factory=list)

    def shared_extra(self) -> Extra:
        """The sample's facts and its IP messages, for every observation of the sample."""
        return tuple(self.extra) + tuple(("ip_message", m) for m in self.ip_messages)


def _sender(header: Record) -> tuple[str, str]:
    """(model, serial) from H.5: XN serial is component 3, XP serial component 6."""
    model = _component(header, 5, 0)
    serial = _component(header, 5, 2) or _component(header, 5, 5)
    return model, serial


def _qc_lot_and_level(specimen_id: str) -> tuple[str, str]:
    match = _QC_NUMBER.fullmatch(specimen_id)
    if match is None:
        return "", ""
    lot = match.group(1)
    return lot, CHECK_LEVELS.get(lot[-2:], "") if len(lot) > 2 else ""


def _order(record: Record, patient_id: str, sender: tuple[str, str]) -> _Sample:
    model = sender[0]
    specimen = _component(record, 4, 2) or _component(record, 3, 2) or _component(record, 3, 0)
    action = _first(record, 12).upper()
    lot, level = _qc_lot_and_level(specimen)
    is_qc = action == "Q" or bool(lot)
    extra = [("analyser_model", model)] if model else []
    for key, index in (("rack", 0), ("tube_position", 1), ("sample_no_attribute", 3)):
        if text := _component(record, 4, index):
            extra.append((key, text))
    return _Sample(
        specimen_id=specimen,
        patient_id="" if is_qc else patient_id,
        is_qc=is_qc,
        control_lot=lot,
        control_level=level,
        extra=extra,
    )


def _parameter_code(record: Record) -> tuple[str, str, str]:
    """(code, dilution, extended-order mark) from R.3 ``^^^^CODE^dilution^^^^W``."""
    components = record.field(3)[0] if record.field(3) else ()
    # the code sits in component 5; a bare "WBC" (no components) is read as the code itself
    code = components[4].strip() if len(components) > 4 else universal_test_code(record)
    if not code:
        raise field_error("R.3", "result record has no parameter code", "^".join(components))
    dilution = components[5].strip() if len(components) > 5 else ""
    extended = components[9].strip() if len(components) > 9 else ""
    return code, dilution, extended


def _is_ip_message(code: str, dilution: str, value: str) -> bool:
    if dilution:
        return False
    return not value or code.endswith("?") or code in IP_MESSAGES or code.startswith(_IP_PREFIXES)


def _result(record: Record, sample: _Sample, instrument_id: str, serial: str) -> Observation | None:
    """One R record -> an observation, or None (an image, research item or IP message)."""
    code, dilution, extended = _parameter_code(record)
    if code.startswith(_IMAGE_PREFIXES) or code.endswith(_RESEARCH_SUFFIXES):
        return None
    raw_value = record.value(4)
    flags = repeated_flags(record)
    if _is_ip_message(code, dilution, raw_value.strip()):
        if "A" in flags:
            value = raw_value.strip()
            sample.ip_messages.append(f"{code}={value}" if value else code)
        return None
    value, value_type, extra = normalise_value(raw_value)
    if dilution not in ("", "1"):
        extra += (("dilution", dilution),)
    if extended:
        extra += (("extended_order", extended),)
    return Observation(
        instrument_id=instrument_id,
        test_code=code,
        value=value,
        value_type=value_type,
        unit=_first(record, 5),
        reference_range=normalise_range(record.value(6)),
        abnormal_flags=flags,
        method=Method.MEASURED,
        performed_at=parse_astm_datetime(record.value(13), field="R.13"),
        operator_id=_component(record, 11, 0),
        specimen_id=sample.specimen_id,
        patient_id=sample.patient_id,
        result_status=_first(record, 9) or "F",
        instrument_serial=serial,
        is_qc=sample.is_qc,
        control_lot=sample.control_lot,
        control_level=sample.control_level,
        extra=extra,
    )


def sysmex_observations(instrument_id: str, records: Sequence[Record]) -> tuple[Observation, ...]:
    """Map one XN-L or XP message (H..L) to observations; both series decode the same way."""

    def result(record: Record, sample: _Sample, sender: tuple[str, str]) -> Observation | None:
        return _result(record, sample, instrument_id, sender[1])

    return observations_by_sample(
        records, read_header=_sender, read_order=_order, read_result=result, code_component=4
    )


# ---------------------------------------------------------------------------------------------
# The profiles
# ---------------------------------------------------------------------------------------------


class SysmexProfile:
    """The AstmProfile of one Sysmex series; decoding accepts both series' layouts."""

    lenient = True  # space padding, CR before ETX (XP), CR LF damage seen in captures
    encoding = "latin-1"

    qc_recognition = (
        "a control run has O.12 = Q or an XN CHECK sample number (QC-<lot>); the lot is that "
        "number, the level its last two digits (low, normal, high)"
    )

    def __init__(self, key: str, name: str, description: str) -> None:
        self.key = key
        self.name = name
        self.description = description

    def observations(
        self, instrument_id: str, records: Sequence[Record]
    ) -> tuple[Observation, ...]:
        return sysmex_observations(instrument_id, records)


PROFILE = SysmexProfile(
    key="astm_sysmex_xn",
    name="Sysmex XN-L series (XN-350/450/550)",
    description="Sysmex XN-L haematology analyser, ASTM E1381/E1394: CBC + 6-part DIFF, "
    "XN CHECK QC (action code Q, QC- sample numbers), IP messages kept as flags",
)

PROFILE_XP = SysmexProfile(
    key="astm_sysmex_xp",
    name="Sysmex XP series (XP-100/300)",
    description="Sysmex XP haematology analyser, ASTM E1381/E1394: CBC + 3-part DIFF, "
    "space-padded values and operator",
)
