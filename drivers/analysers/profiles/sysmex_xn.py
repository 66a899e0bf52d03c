"""Sysmex XN-L (XN-350/450/550) and XP (XP-100/300) haematology: ASTM mapping and simulation.

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

import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from drivers.analysers.astm_base import (
    Extra,
    SimSample,
    field_error,
    format_astm_datetime,
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
from drivers.analysers.astm_simulation import (
    blanks,
    field_of,
    record_of,
)
from drivers.analysers.blood_count import Blood, control_blood, patient_blood
from drivers.model import Method, Observation
from drivers.protocols.astm.records import DEFAULT_DELIMITERS, Delimiters, Field, Record

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
_LEVELS = {"01": "low", "02": "normal", "03": "high"}
_LEVEL_SUFFIX = {level: suffix for suffix, level in _LEVELS.items()}


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
    return lot, _LEVELS.get(lot[-2:], "") if len(lot) > 2 else ""


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
# Simulation: a plausible CBC or QC run, and the records the analyser sends for it
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Parameter:
    """One reportable parameter: code, unit, decimals sent, and the adult reference interval."""

    code: str
    unit: str
    decimals: int
    low: float
    high: float


def _menu(*rows: tuple[str, str, int, float, float]) -> tuple[Parameter, ...]:
    return tuple(Parameter(*row) for row in rows)


#: XN-L CBC + DIFF in the order the XN-550 sends it (corpus), default units.
XN_MENU = _menu(
    ("WBC", "10*3/uL", 2, 3.5, 10.0), ("RBC", "10*6/uL", 2, 4.0, 5.7),
    ("HGB", "g/dL", 1, 11.7, 16.6), ("HCT", "%", 1, 35.0, 49.0), ("MCV", "fL", 1, 82.0, 98.0),
    ("MCH", "pg", 1, 27.0, 33.0), ("MCHC", "g/dL", 1, 32.0, 36.0),
    ("PLT", "10*3/uL", 0, 145.0, 390.0), ("NEUT%", "%", 1, 40.0, 75.0),
    ("LYMPH%", "%", 1, 18.0, 48.0), ("MONO%", "%", 1, 3.0, 12.0), ("EO%", "%", 1, 0.5, 6.0),
    ("BASO%", "%", 1, 0.0, 1.5), ("NEUT#", "10*3/uL", 2, 1.5, 7.3),
    ("LYMPH#", "10*3/uL", 2, 1.0, 4.0), ("MONO#", "10*3/uL", 2, 0.2, 0.8),
    ("EO#", "10*3/uL", 2, 0.0, 0.5), ("BASO#", "10*3/uL", 2, 0.0, 0.1),
    ("IG%", "%", 1, 0.0, 0.6), ("IG#", "10*3/uL", 2, 0.0, 0.06),
    ("RDW-SD", "fL", 1, 37.0, 54.0), ("RDW-CV", "%", 1, 11.5, 15.0), ("MPV", "fL", 1, 8.6, 12.4),
)  # fmt: skip

#: XP CBC with the 3-part differential (LYM, MXD, NEUT), in the XP-100/300 order.
XP_MENU = _menu(
    ("WBC", "10*3/uL", 1, 3.5, 10.0), ("RBC", "10*6/uL", 2, 4.0, 5.7),
    ("HGB", "g/dL", 1, 11.7, 16.6), ("HCT", "%", 1, 35.0, 49.0), ("MCV", "fL", 1, 82.0, 98.0),
    ("MCH", "pg", 1, 27.0, 33.0), ("MCHC", "g/dL", 1, 32.0, 36.0),
    ("PLT", "10*3/uL", 0, 145.0, 390.0), ("LYM%", "%", 1, 18.0, 48.0),
    ("MXD%", "%", 1, 4.0, 15.0), ("NEUT%", "%", 1, 40.0, 75.0), ("LYM#", "10*3/uL", 1, 1.0, 4.0),
    ("MXD#", "10*3/uL", 1, 0.1, 1.0), ("NEUT#", "10*3/uL", 1, 1.5, 7.3),
    ("RDW-SD", "fL", 1, 37.0, 54.0), ("RDW-CV", "%", 1, 11.5, 15.0), ("PDW", "fL", 1, 9.0, 17.0),
    ("MPV", "fL", 1, 8.6, 12.4), ("P-LCR", "%", 1, 13.0, 43.0), ("PCT", "%", 2, 0.17, 0.35),
)  # fmt: skip


#: XN CHECK-like control targets per level (level 3 matches the corpus QC run).
_QC_TARGETS = {
    "low": Blood(3.0, 2.3, 76.0, 33.0, 75.0, 13.0, 9.5, (52.0, 30.0, 9.0, 6.0, 3.0, 2.0)),
    "normal": Blood(7.0, 4.4, 86.0, 34.0, 230.0, 14.0, 10.0, (55.0, 24.0, 9.0, 8.0, 4.0, 6.0)),
    "high": Blood(16.8, 5.3, 86.0, 36.0, 580.0, 15.0, 10.0, (53.0, 18.6, 7.5, 13.6, 7.3, 15.0)),
}


def _quantities(blood: Blood) -> dict[str, float]:
    """Every parameter of both menus, computed so that indices and differentials agree."""
    neut, lymph, mono, eo, baso, ig = blood.diff
    q = blood.indices() | {
        "NEUT%": neut, "LYMPH%": lymph, "MONO%": mono, "EO%": eo, "BASO%": baso, "IG%": ig,
        "LYM%": lymph, "MXD%": mono + eo + baso,
        "PDW": blood.mpv * 1.2, "P-LCR": (blood.mpv - 6.5) * 6.0,
        "PCT": blood.plt * blood.mpv / 10_000,
    }  # fmt: skip
    for code in ("NEUT", "LYMPH", "MONO", "EO", "BASO", "IG", "LYM", "MXD"):
        q[f"{code}#"] = blood.wbc * q[f"{code}%"] / 100
    return q


def _flag(parameter: Parameter, value: str, qc: bool) -> str:
    if qc:
        return "N"  # QC runs are judged against the QC file's limits, not reference intervals
    try:
        number = float(value)
    except ValueError:
        return "A"  # "----" (analysis error) or "++++" (over the display range)
    return "L" if number < parameter.low else "H" if number > parameter.high else "N"


@dataclass(frozen=True, slots=True)
class Layout:
    """What differs between the XN-L and the XP on the wire."""

    model: str
    software: str
    ps_code: str
    menu: tuple[Parameter, ...]
    #: width the sample number is right-justified to in O.4
    sample_width: int
    #: width values are right-justified to in R.4 (0: as is)
    value_width: int
    #: width the operator is left-justified to in R.11 (0: as is)
    operator_width: int
    #: R.9 as sent ("" on the XP)
    status: str
    #: the XN adds empty C records and the scattergram/histogram file references
    xn_extras: bool
    #: the XN sends the patient ID in P.5; the XP identifies samples by sample number only
    #: (captures of the XP-100 and XP-300 show a bare ``P|1``)
    sends_patient_id: bool


XN_LAYOUT = Layout(
    "XN-550", "00-24", "BD634545", XN_MENU, 22, 0, 0, "F", xn_extras=True, sends_patient_id=True
)
XP_LAYOUT = Layout(
    "XP-300", "00-16", "AP807129", XP_MENU, 15, 5, 15, "", xn_extras=False, sends_patient_id=False
)


def _header(layout: Layout, serial: str, delimiters: Delimiters) -> Record:
    if layout.xn_extras:  # XN: model padded to 10, serial in component 3
        sender = field_of(
            layout.model.rjust(10), layout.software, serial, "", "", "", layout.ps_code
        )
    else:  # XP: serial in component 6
        sender = field_of(layout.model, layout.software, "", "", "", serial, layout.ps_code)
    return record_of("H", field_of(delimiters.definition), "", "", sender, *blanks(7), "E1394-97")


def _patient(patient_id: str) -> Record:
    return record_of(
        "P", "1", "", "", patient_id, field_of("", "", ""), "", "", "U", *blanks(4),
        field_of("", ""), *blanks(11), field_of("", "", "", ""),
    )  # fmt: skip


def _order_record(layout: Layout, sample: SimSample) -> Record:
    rack, position = ("1", "1") if sample.is_qc else ("", "")
    attribute = "B" if sample.is_qc else "M"
    number = sample.specimen_id.rjust(layout.sample_width)
    tests: Field = tuple(("", "", "", "", p.code) for p in layout.menu)
    action = "Q" if sample.is_qc else "N"
    return record_of(
        "O", "1", "", field_of(rack, position, number, attribute), tests, *blanks(6), action,
        *blanks(13), "F",
    )  # fmt: skip


def _image_records(sample: SimSample, first: int, when: str) -> list[Record]:
    local = when[:8]
    stamp = f"{when[:4]}_{when[4:6]}_{when[6:8]}_{when[8:10]}_{when[10:12]}_{sample.specimen_id}"
    names = (
        ("SCAT_WDF", "WDF"), ("SCAT_WDF-CBC", "WDF_CBC"), ("DIST_RBC", "RBC"), ("DIST_PLT", "PLT")
    )  # fmt: skip
    return [
        record_of("R", str(first + i), field_of("", "", "", "", code),
                  f"PNG\\{local}\\{stamp}_{suffix}.PNG", "", "", "N", "", "F", "", "", "", when)
        for i, (code, suffix) in enumerate(names)
    ]  # fmt: skip


def sysmex_message(
    layout: Layout, sample: SimSample, delimiters: Delimiters = DEFAULT_DELIMITERS
) -> list[Record]:
    """The records an XN-L or XP sends for ``sample`` (values in the menu's order)."""
    when = format_astm_datetime(sample.performed_at)
    units = {p.code: p.unit for p in layout.menu}
    records = [_header(layout, sample.instrument_serial, delimiters)]
    records.append(_patient(sample.patient_id) if layout.sends_patient_id else record_of("P", "1"))
    if layout.xn_extras:
        records.append(record_of("C", "1", "", ""))
    records.append(_order_record(layout, sample))
    if layout.xn_extras:
        records.append(record_of("C", "1", "", ""))
    operator = sample.operator_id.ljust(layout.operator_width)
    for seq, (code, value, flag) in enumerate(_sent_values(layout, sample), start=1):
        records.append(
            record_of("R", str(seq), field_of("", "", "", "", code, "1"),
                      value.rjust(layout.value_width), units.get(code, ""), "", flag, "",
                      layout.status, "", operator, "", when)
        )  # fmt: skip
    if layout.xn_extras:
        records += _image_records(sample, len(sample.values) + 1, when)
        records.append(record_of("C", "1", "", ""))
    records.append(record_of("L", "1", "N"))
    return records


def _sent_values(layout: Layout, sample: SimSample) -> Iterator[tuple[str, str, str]]:
    by_code = {p.code: p for p in layout.menu}
    for code, value, _unit in sample.values:
        parameter = by_code.get(code)
        flag = _flag(parameter, value, sample.is_qc) if parameter else "N"
        yield code, value, flag


def sysmex_sample(
    layout: Layout,
    rng: random.Random,
    *,
    operator_id: str,
    qc: bool,
    patient_id: str,
    now: datetime,
) -> SimSample:
    """A plausible CBC for a patient, or an XN CHECK-like run at a random level.

    On the XP the patient ID is dropped: that analyser cannot send one.
    """
    level = rng.choice(("low", "normal", "high")) if qc else ""
    blood = (
        control_blood(rng, _QC_TARGETS[level], 0.97, 1.03)
        if qc
        else patient_blood(rng, rdw_cv=(11.0, 17.5), mpv=(8.0, 13.0), immature_granulocytes=True)
    )
    quantities = _quantities(blood)
    values = tuple((p.code, f"{quantities[p.code]:.{p.decimals}f}", p.unit) for p in layout.menu)
    lot = f"{rng.randrange(800_000, 1_000_000)}{_LEVEL_SUFFIX[level]}" if qc else ""
    serial = f"{rng.randrange(10_000, 100_000)}" if layout.xn_extras else f"A{rng.randrange(10**4)}"
    return SimSample(
        specimen_id=f"QC-{lot}" if qc else f"{rng.randrange(10**9, 10**10)}",
        patient_id="" if qc or not layout.sends_patient_id else patient_id,
        operator_id=operator_id,
        performed_at=(now - timedelta(seconds=rng.randrange(30, 300))).replace(microsecond=0),
        values=values,
        is_qc=qc,
        control_lot=lot,
        control_level=level,
        instrument_serial=serial,
    )


# ---------------------------------------------------------------------------------------------
# The profiles
# ---------------------------------------------------------------------------------------------


class SysmexProfile:
    """The AstmProfile of one Sysmex series; decoding accepts both series' layouts."""

    lenient = True  # space padding, CR before ETX (XP), CR LF damage seen in captures
    encoding = "latin-1"

    def __init__(self, key: str, name: str, description: str, layout: Layout) -> None:
        self.key = key
        self.name = name
        self.description = description
        self.layout = layout

    def observations(
        self, instrument_id: str, records: Sequence[Record]
    ) -> tuple[Observation, ...]:
        return sysmex_observations(instrument_id, records)

    def simulated_message(
        self, sample: SimSample, delimiters: Delimiters = DEFAULT_DELIMITERS
    ) -> list[Record]:
        return sysmex_message(self.layout, sample, delimiters)

    def simulated_sample(
        self, rng: random.Random, *, operator_id: str, qc: bool, patient_id: str, now: datetime
    ) -> SimSample:
        return sysmex_sample(
            self.layout, rng, operator_id=operator_id, qc=qc, patient_id=patient_id, now=now
        )


PROFILE = SysmexProfile(
    key="astm_sysmex_xn",
    name="Sysmex XN-L series (XN-350/450/550)",
    description="Sysmex XN-L haematology analyser, ASTM E1381/E1394: CBC + 6-part DIFF, "
    "XN CHECK QC (action code Q, QC- sample numbers), IP messages kept as flags",
    layout=XN_LAYOUT,
)

PROFILE_XP = SysmexProfile(
    key="astm_sysmex_xp",
    name="Sysmex XP series (XP-100/300)",
    description="Sysmex XP haematology analyser, ASTM E1381/E1394: CBC + 3-part DIFF, "
    "space-padded values and operator",
    layout=XP_LAYOUT,
)
