"""Sysmex XN-L (XN-550) and XP (XP-300) as the simulator plays them: a CBC or a QC run, and
the records each series sends for it.

The layouts are the profile's (``drivers.analysers.profiles.sysmex_xn``: its docstring gives the
field map and its sources); ``Layout`` holds what differs between the two series on the wire.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from drivers.analysers.astm_base import format_astm_datetime
from drivers.analysers.profiles.sysmex_xn import CHECK_LEVELS
from drivers.protocols.astm.records import DEFAULT_DELIMITERS, Delimiters, Field, Record
from simulators.astm_models.blood_count import (
    Blood,
    control_materials,
    control_values,
    patient_blood,
)
from simulators.astm_models.qc import ANY_CONTROL, ControlRun, QcMaterial, by_key, control_level
from simulators.astm_models.records import blanks, field_of, record_of
from simulators.astm_models.sample import AstmModel, SimSample

_LEVEL_SUFFIX = {level: suffix for suffix, level in CHECK_LEVELS.items()}


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


#: the control levels, as the profile reads them from the lot's last two digits
LEVELS = ("low", "normal", "high")


def _lots(prefix: str) -> dict[str, str]:
    """level -> lot: a fixed lot number per level, the level in its last two digits."""
    return {level: f"{prefix}{_LEVEL_SUFFIX[level]}" for level in LEVELS}


#: the XN-L runs XN CHECK, the XP EIGHTCHECK-3WP: lots kept for the whole simulation
XN_CONTROL_LOTS = _lots("821514")
XP_CONTROL_LOTS = _lots("721514")
_TARGET_QUANTITIES = {level: _quantities(blood) for level, blood in _QC_TARGETS.items()}


def _materials(layout: Layout, lots: dict[str, str], material: str) -> tuple[QcMaterial, ...]:
    parameters = ((p.code, p.unit, p.decimals) for p in layout.menu)
    return control_materials(parameters, _TARGET_QUANTITIES, lots, material)


#: the controls' targets per parameter and level (the insert's assigned values)
XN_QC_MATERIALS = _materials(XN_LAYOUT, XN_CONTROL_LOTS, "XN CHECK")
XP_QC_MATERIALS = _materials(XP_LAYOUT, XP_CONTROL_LOTS, "EIGHTCHECK-3WP")


_XN_TARGETS = by_key(XN_QC_MATERIALS)
_XP_TARGETS = by_key(XP_QC_MATERIALS)


class SysmexModel:
    """The simulated analyser of one Sysmex series, by its ``Layout``."""

    def __init__(self, layout: Layout, materials: tuple[QcMaterial, ...]) -> None:
        self.layout = layout
        self._materials = materials

    @property
    def qc_materials(self) -> tuple[QcMaterial, ...]:
        return self._materials

    def message(
        self, sample: SimSample, delimiters: Delimiters = DEFAULT_DELIMITERS
    ) -> list[Record]:
        return sysmex_message(self.layout, sample, delimiters)

    def sample(
        self,
        rng: random.Random,
        *,
        operator_id: str,
        qc: bool,
        patient_id: str,
        now: datetime,
        control: ControlRun = ANY_CONTROL,
    ) -> SimSample:
        """A plausible CBC for a patient, or an XN CHECK-like run at a random level (or the
        one ``control`` asks for).

        On the XP the patient ID is dropped: that analyser cannot send one.
        """
        layout = self.layout
        xn = layout.xn_extras
        if qc:
            codes = {p.code for p in layout.menu}
            level = control_level(rng, control, layout.model, codes, LEVELS)
            materials = _XN_TARGETS if xn else _XP_TARGETS
            values = control_values(rng, materials, (p.code for p in layout.menu), level, control)
            lot = (XN_CONTROL_LOTS if xn else XP_CONTROL_LOTS)[level]
        else:
            level, lot = "", ""
            blood = patient_blood(
                rng, rdw_cv=(11.0, 17.5), mpv=(8.0, 13.0), immature_granulocytes=True
            )
            quantities = _quantities(blood)
            values = tuple(
                (p.code, f"{quantities[p.code]:.{p.decimals}f}", p.unit) for p in layout.menu
            )
        serial = f"{rng.randrange(10_000, 100_000)}" if xn else f"A{rng.randrange(10**4)}"
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


XN_MODEL: AstmModel = SysmexModel(XN_LAYOUT, XN_QC_MATERIALS)
XP_MODEL: AstmModel = SysmexModel(XP_LAYOUT, XP_QC_MATERIALS)
