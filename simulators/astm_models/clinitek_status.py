"""Siemens CLINITEK Status+ as the simulator plays it: one strip, and the records it sends.

The layout is the profile's, and it is ours (``drivers.analysers.profiles.clinitek_status``: its
docstring says why and gives the field map): H, P, O, one R per pad and visual entry, L. Each
pad reads on its own scale below; the first categories of a scale are the normal ones.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from drivers.analysers.astm_base import format_astm_datetime
from drivers.analysers.profiles.clinitek_status import TEST_NAMES, VISUAL_CODES
from drivers.errors import LocalProtocolError
from drivers.protocols.astm.records import DEFAULT_DELIMITERS, Delimiters, Record
from simulators.astm_models.qc import ANY_CONTROL, ControlRun, QcMaterial, control_level
from simulators.astm_models.records import (
    TERMINATOR,
    build_record,
    patient_or_control,
    require_aware,
    simulated_header,
    simulated_results,
)
from simulators.astm_models.sample import AstmModel, SimSample

SENDER_NAME = "CLINITEK Status+"
SOFTWARE_VERSION = "SUA-2014r74-4"
STRIP = "MULTISTIX 10 SG"
#: each pad's scale, normal (unflagged) categories first; unit per code below
_PLUS4 = ("Neg", "1+", "2+", "3+", "4+")
_PLUS3 = ("Neg", "1+", "2+", "3+")
SCALES: dict[str, tuple[str, ...]] = {
    "GLU": _PLUS4,
    "BIL": _PLUS3,
    "KET": _PLUS4,
    "SG": ("<=1.005", "1.010", "1.015", "1.020", "1.025", ">=1.030"),
    "BLO": _PLUS3,
    "pH": ("5.0", "5.5", "6.0", "6.5", "7.0", "7.5", "8.0", "8.5", ">=9.0"),
    "PRO": _PLUS4,
    "URO": ("3.2", "16", "33", "66", ">=131"),
    "NIT": ("Neg", "Pos"),
    "LEU": _PLUS3,
    "COL": ("Yellow", "Straw", "Amber", "Orange", "Red", "Other"),
    "CLA": ("Clear", "Slightly cloudy", "Cloudy", "Turbid"),
}
#: how many leading categories of each scale are normal (not flagged ``A``)
NORMAL_COUNT = {"URO": 2, "SG": 6, "pH": 9, "COL": 3, "CLA": 2}
UNITS = {"URO": "µmol/L"}


class ClinitekStatusModel:
    """The simulated CLINITEK Status+ (see the module docstring)."""

    def message(
        self, sample: SimSample, delimiters: Delimiters = DEFAULT_DELIMITERS
    ) -> list[Record]:
        """The records for one strip: H, P, O, one R per pad and visual entry, L."""
        for code, _, _ in sample.values:
            if code not in TEST_NAMES:
                raise LocalProtocolError(f"not a CLINITEK Status+ result: {code!r}", field="R.3")
        if not set(sample.visual_codes) <= VISUAL_CODES:
            raise LocalProtocolError(
                f"only {sorted(VISUAL_CODES)} are read by eye; the pads are read by the reader",
                field="R.3",
            )
        stamp = format_astm_datetime(sample.performed_at)
        records = [
            simulated_header(
                delimiters,
                (SENDER_NAME, SOFTWARE_VERSION, sample.instrument_serial),
                stamp,
                version="1",
            ),
            build_record("P", {2: "1", 3: patient_or_control(sample)}),
            build_record(
                "O",
                {
                    2: "1",
                    3: sample.specimen_id,
                    5: ("", "", "", STRIP),
                    12: "Q" if sample.is_qc else "N",
                    26: "F",
                },
            ),
        ]
        records += simulated_results(
            sample.values, _flag, operator_id=sample.operator_id, stamp=stamp
        )
        records.append(TERMINATOR)
        return records

    @property
    def qc_materials(self) -> tuple[QcMaterial, ...]:
        return QC_MATERIALS

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
        """One strip: a plausible urine (with colour/clarity by eye) or a Chek-Stix control.

        A control strip reads its level's known pattern every time (``QC_MATERIALS``): a
        drift does not apply to categories read off a strip.
        """
        require_aware(now)
        levels = tuple(CONTROL_LOTS)
        level = control_level(rng, control, "CLINITEK Status+", _PADS, levels) if qc else ""
        values = [(code, _pick(rng, code, level), UNITS.get(code, "")) for code in _PADS]
        visual: tuple[str, ...] = ()
        if not qc and rng.random() < 0.8:  # the operator entered colour and clarity
            visual = ("COL", "CLA")
            values += [(code, _pick(rng, code, ""), "") for code in visual]
        return SimSample(
            specimen_id=f"{rng.randint(1, 9999):04d}",
            patient_id="" if qc else patient_id,
            operator_id=operator_id,
            performed_at=now.astimezone(UTC).replace(microsecond=0),
            values=tuple(values),
            is_qc=qc,
            control_lot=CONTROL_LOTS[level] if qc else "",
            control_level=level,
            instrument_serial=f"CS{rng.randint(0, 999999):06d}",
            visual_codes=visual,
        )


_PADS = ("GLU", "BIL", "KET", "SG", "BLO", "pH", "PRO", "URO", "NIT", "LEU")


def _flag(code: str, value: str) -> str:
    """R.7 ``A`` for a reading outside the pad's normal categories."""
    return "" if _is_normal(code, value) else "A"


def _is_normal(code: str, value: str) -> bool:
    scale = SCALES.get(code, ())
    normal = scale[: NORMAL_COUNT.get(code, 1)]
    return value in normal or value not in scale


def _pick(rng: random.Random, code: str, control_level: str) -> str:
    """A pad reading: mostly normal for patients; a Chek-Stix level gives its known pattern."""
    scale = SCALES[code]
    normal = NORMAL_COUNT.get(code, 1)
    if control_level == "Negative":
        return scale[0] if normal == 1 else scale[min(normal, len(scale)) // 2]
    if control_level == "Positive":
        return scale[-1] if normal == 1 else scale[len(scale) // 2]
    if normal < len(scale) and rng.random() < 0.2:
        return rng.choice(scale[normal:])
    return rng.choice(scale[:normal])


#: Chek-Stix level -> its lot, kept for the whole simulation
CONTROL_LOTS = {"Positive": "612345", "Negative": "612346"}


def _expected(code: str, level: str) -> str:
    return _pick(random.Random(0), code, level)  # a control level's pattern draws nothing


#: the Chek-Stix levels: each pad must read its level's category (qualitative controls)
QC_MATERIALS: tuple[QcMaterial, ...] = tuple(
    QcMaterial(
        test_code=code,
        level=level,
        lot=lot,
        mean=None,
        sd=None,
        unit=UNITS.get(code, ""),
        decimals=0,
        material=f"Chek-Stix {level}",
        kind="qualitative",
        expected=_expected(code, level),
    )
    for level, lot in CONTROL_LOTS.items()
    for code in _PADS
)


MODEL: AstmModel = ClinitekStatusModel()
