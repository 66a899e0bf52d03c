"""HORIBA Yumizen H500 as the simulator plays it: a CBC + DIFF or an ABX Difftrol run, and the
records it sends (one record per frame on the wire, base64 curves in M records).

The layout is the profile's (``drivers.analysers.profiles.yumizen_h500``: its docstring gives
the field map and its sources).
"""

from __future__ import annotations

import base64
import math
import random
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from drivers.analysers.astm_base import format_astm_datetime
from drivers.protocols.astm.records import DEFAULT_DELIMITERS, Delimiters, Record
from simulators.astm_models.blood_count import (
    Blood,
    control_materials,
    control_values,
    patient_blood,
)
from simulators.astm_models.qc import ANY_CONTROL, ControlRun, QcMaterial, by_key, control_level
from simulators.astm_models.records import blanks, field_of, record_of
from simulators.astm_models.sample import AstmModel, SimSample

_LEVEL_TEXT = {"low": "CTRL LOW", "normal": "CTRL MEDIUM", "high": "CTRL HIGH"}
_CURVE_ENCODING = "FLOATLE-stream/deflate:base64"


@dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter as the H500 sends it, with the adult reference interval it reports."""

    code: str
    loinc: str
    unit: str
    decimals: int
    low: float
    high: float


#: The H500's CBC + 5-part DIFF in the order it sends them (corpus), with its default units.
MENU = tuple(
    Parameter(*row)
    for row in (
        ("MCV", "787-2", "um3", 1, 80.0, 98.0), ("NEU#", "751-8", "10E3/uL", 2, 1.6, 7.0),
        ("NEU%", "770-8", "%", 1, 40.0, 73.0), ("RDW-CV", "788-0", "%", 1, 11.0, 17.0),
        ("MPV", "32623-1", "um3", 1, 7.4, 11.0), ("RBC", "789-8", "10E6/uL", 2, 3.9, 5.8),
        ("MON#", "742-7", "10E3/uL", 2, 0.2, 0.8), ("PLT", "777-3", "10E3/uL", 0, 150.0, 400.0),
        ("WBC", "6690-2", "10E3/uL", 2, 4.0, 10.0), ("MON%", "5905-5", "%", 1, 4.0, 13.0),
        ("LYM#", "731-0", "10E3/uL", 2, 1.0, 4.0), ("HGB", "718-7", "g/dL", 1, 11.5, 16.7),
        ("LYM%", "736-9", "%", 1, 18.0, 45.0), ("RDW-SD", "21000-5", "um3", 1, 37.0, 54.0),
        ("BAS%", "706-2", "%", 1, 0.0, 2.0), ("BAS#", "704-7", "10E3/uL", 2, 0.0, 0.1),
        ("MCH", "785-6", "pg", 1, 27.0, 33.0), ("MCHC", "786-4", "g/dL", 1, 32.0, 36.0),
        ("HCT", "4544-3", "%", 1, 35.0, 49.0), ("EOS#", "711-2", "10E3/uL", 2, 0.0, 0.5),
        ("EOS%", "713-8", "%", 1, 0.5, 7.0),
    )
)  # fmt: skip


def _quantities(blood: Blood) -> dict[str, float]:
    """Every parameter of the menu: the indices, and each population as % and count."""
    q = blood.indices()
    for code, pct in zip(("NEU", "LYM", "MON", "EOS", "BAS"), blood.diff, strict=True):
        q[f"{code}%"] = pct
        q[f"{code}#"] = blood.wbc * pct / 100
    return q


#: ABX Difftrol-like targets per level (normal and low as in the corpus runs).
QC_TARGETS = {
    "low": Blood(3.15, 2.31, 78.4, 32.6, 64.0, 17.0, 8.6, (43.4, 41.2, 5.2, 8.4, 1.8)),
    "normal": Blood(8.30, 4.52, 89.0, 32.4, 261.0, 14.5, 9.3, (47.4, 42.0, 4.4, 3.7, 2.5)),
    "high": Blood(17.5, 5.35, 92.0, 33.0, 480.0, 13.5, 9.6, (55.0, 30.0, 8.0, 5.0, 2.0)),
}
#: Half-width of a control's assay range, relative to its target (percentages: absolute).
_QC_TOLERANCE = 0.08
_QC_PERCENT_TOLERANCE = 8.0


def _range(parameter: Parameter, sample: SimSample) -> tuple[str, str]:
    """(low, high) as the analyser prints them: the control's assay range, or the adult one."""
    if sample.is_qc and sample.control_level in QC_TARGETS:
        target = _quantities(QC_TARGETS[sample.control_level])[parameter.code]
        if parameter.unit == "%" and parameter.code not in ("HCT", "RDW-CV"):
            low, high = max(0.0, target - _QC_PERCENT_TOLERANCE), target + _QC_PERCENT_TOLERANCE
        else:
            low, high = target * (1 - _QC_TOLERANCE), target * (1 + _QC_TOLERANCE)
    else:
        low, high = parameter.low, parameter.high
    return f"{low:.{parameter.decimals}f}", f"{high:.{parameter.decimals}f}"


def _flag(value: str, low: str, high: str, *, qc: bool) -> str:
    if qc:
        return "N"  # the corpus runs flag N even outside the assay range: QC is judged elsewhere
    try:
        number = float(value)
    except ValueError:
        return "A"  # not a number: the analyser flags such results abnormal
    return "L" if number < float(low) else "H" if number > float(high) else "N"


def _curve(centre: float, width: float, points: int = 128) -> str:
    """A histogram as the H500 sends it: little-endian float32, deflated, base64."""
    values = [math.exp(-(((i - centre) / width) ** 2) / 2) for i in range(points)]
    return base64.b64encode(zlib.compress(struct.pack(f"<{points}f", *values))).decode("ascii")


def _reagent_record(number: int, when: datetime) -> Record:
    """Lots of the three reagents in use; derived from the run date so a sample maps stably."""
    opened, expiry = when - timedelta(days=12), when + timedelta(days=80)
    lots = [(f"{when:%y%m%d}{suffix}", f"{opened:%Y%m%d}000000", f"{expiry:%Y%m%d}")
            for suffix in ("I1", "H1", "M11")]  # fmt: skip
    return record_of(
        "M", str(number), "REAGENT", (("CLEANER",), ("DILUENT",), ("LYSE",)), tuple(lots)
    )


_BY_CODE = {p.code: p for p in MENU}


def _result_record(
    seq: int, code: str, value: str, unit: str, sample: SimSample, when: str
) -> Record:
    parameter = _BY_CODE.get(code)
    if parameter is None:  # a value the menu does not know: sent without range or LOINC
        loinc, reference, flag = "", field_of(""), "N"
    else:
        low, high = _range(parameter, sample)
        loinc, reference = parameter.loinc, field_of(f"{low} - {high}", "REFERENCE_RANGE")
        flag = _flag(value, low, high, qc=sample.is_qc)
    operator = field_of(sample.operator_id, "", "USER")
    return record_of(
        "R", str(seq), field_of("", "", "", code, loinc), value, unit, reference, flag, "", "F", "",
        operator, when, "", "",
    )  # fmt: skip


def yumizen_message(sample: SimSample, delimiters: Delimiters = DEFAULT_DELIMITERS) -> list[Record]:
    """The records a Yumizen H500 sends for ``sample``: one record per frame on the wire."""
    when = format_astm_datetime(sample.performed_at)
    sent = format_astm_datetime(sample.performed_at + timedelta(seconds=78))
    values = {code: value for code, value, _unit in sample.values}
    sender = field_of("H500", sample.instrument_serial, "2.2.2.2b")
    records = [
        record_of("H", field_of(delimiters.definition), "", "", sender, *blanks(6),
             "Q" if sample.is_qc else "P", "LIS2-A2", sent),
        record_of("P", "1", sample.patient_id, *blanks(33)),
    ]  # fmt: skip
    descriptor = (
        field_of("CTRL", "", _LEVEL_TEXT.get(sample.control_level, "CTRL"))
        if sample.is_qc
        else field_of("BLOOD")
    )
    records.append(
        record_of("O", "1", sample.specimen_id, "", field_of("", "", "", "DIF"), "R", when,
                  *blanks(8), descriptor, *blanks(9), "F", *blanks(5))
    )  # fmt: skip
    if sample.is_qc:
        letter = {"low": "L", "normal": "N", "high": "H"}.get(sample.control_level, "")
        records.append(record_of("C", "1", "I", f"ABXdifftrol {letter}".strip(), "G"))
    mcv = float(values.get("MCV", "90"))
    records.append(
        record_of("M", "1", "HISTOGRAM", "RBC/PLT", "RbcAlongRes",
                  field_of(_CURVE_ENCODING, _curve(0, 1)),
                  field_of(_CURVE_ENCODING, _curve(mcv / 2, 12)))
    )  # fmt: skip
    records.append(_reagent_record(2, sample.performed_at))
    records += (
        _result_record(seq, code, value, unit, sample, when)
        for seq, (code, value, unit) in enumerate(sample.values, start=1)
    )
    records.append(record_of("L", "1", "N"))
    return records


#: the ABX Difftrol levels and their lots, kept for the whole simulation (PX441N: level N)
LEVELS = ("low", "normal", "high")
CONTROL_LOTS = {level: f"PX441{level[:1].upper()}" for level in LEVELS}
#: the controls' targets per parameter and level (the insert's assigned values)
QC_MATERIALS: tuple[QcMaterial, ...] = control_materials(
    ((p.code, p.unit, p.decimals) for p in MENU),
    {level: _quantities(blood) for level, blood in QC_TARGETS.items()},
    CONTROL_LOTS,
    "ABX Difftrol",
)
_TARGETS = by_key(QC_MATERIALS)


class YumizenModel:
    """The simulated Yumizen H500 (see the module docstring)."""

    @property
    def qc_materials(self) -> tuple[QcMaterial, ...]:
        return QC_MATERIALS

    def message(
        self, sample: SimSample, delimiters: Delimiters = DEFAULT_DELIMITERS
    ) -> list[Record]:
        return yumizen_message(sample, delimiters)

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
        """A plausible CBC + DIFF for a patient, or an ABX Difftrol run at a random level (or
        the one ``control`` asks for)."""
        if qc:
            level = control_level(rng, control, "Yumizen H500", _BY_CODE, LEVELS)
            values = control_values(rng, _TARGETS, (p.code for p in MENU), level, control)
            lot = CONTROL_LOTS[level]
        else:
            level, lot = "", ""
            blood = patient_blood(
                rng, rdw_cv=(11.0, 18.5), mpv=(7.0, 12.0), immature_granulocytes=False
            )
            quantities = _quantities(blood)
            values = tuple((p.code, f"{quantities[p.code]:.{p.decimals}f}", p.unit) for p in MENU)
        return SimSample(
            specimen_id=lot if qc else f"{rng.randrange(10**9, 10**10)}",
            patient_id="" if qc else patient_id,
            operator_id=operator_id,
            performed_at=(now - timedelta(seconds=rng.randrange(60, 300))).replace(microsecond=0),
            values=values,
            is_qc=qc,
            control_lot=lot,
            control_level=level,
            instrument_serial=f"{rng.randrange(900, 1000)}YOXH{rng.randrange(10**5):05d}",
        )


MODEL: AstmModel = YumizenModel()
