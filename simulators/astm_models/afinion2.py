"""Abbott Afinion 2 as the simulator plays it: one cartridge run, and the records it sends.

The layout is the profile's (``drivers.analysers.profiles.afinion2``: its docstring gives the
field map and its sources): H, P, then O and its R records per assay, L.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime

from drivers.analysers.astm_base import format_astm_datetime
from drivers.analysers.profiles.afinion2 import NOT_MEASURABLE
from drivers.errors import LocalProtocolError
from drivers.protocols.astm.records import DEFAULT_DELIMITERS, Delimiters, Record
from simulators.astm_models.qc import ANY_CONTROL, ControlRun, QcMaterial, by_key, draw
from simulators.astm_models.records import (
    TERMINATOR,
    build_record,
    comparator_flag,
    patient_or_control,
    require_aware,
    simulated_header,
    simulated_results,
)
from simulators.astm_models.sample import AstmModel, SimSample

SENDER_NAME = "Afinion 2 Analyzer"
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


class Afinion2Model:
    """The simulated Afinion 2 (see the module docstring)."""

    def message(
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
        """One cartridge run: a random assay, patient values or a control near its target."""
        require_aware(now)
        if qc and control.test:
            if control.test not in ASSAY_OF:
                raise ValueError(f"the Afinion 2 has no control for {control.test!r}")
            assay = ASSAY_OF[control.test]
        else:
            assay = rng.choice(("HbA1c", "CRP", "Lipid Panel", "ACR"))
        level = (control.level or rng.choice(LEVELS)) if qc else ""
        values = _control_values(rng, assay, level, control) if qc else _PATIENT_VALUES[assay](rng)
        return SimSample(
            specimen_id=str(rng.randint(1, 9999)),
            patient_id="" if qc else patient_id,
            operator_id=operator_id,
            performed_at=now.astimezone(UTC).replace(microsecond=0),
            values=values,
            is_qc=qc,
            control_lot=CONTROL_LOTS[(assay, level)] if qc else "",
            control_level=level,
            instrument_serial=f"AF2{rng.randint(0, 9999999):07d}",
        )


def _cartridge_lot(assay: str, performed_at: datetime) -> str:
    """A plausible 8-digit cartridge lot, stable for one assay and month."""
    prefix = {"HbA1c": "22", "CRP": "23", "Lipid Panel": "24", "ACR": "25"}.get(assay, "29")
    return f"10{prefix}{performed_at:%y%m}"


Values = tuple[tuple[str, str, str], ...]

#: the Afinion control levels (Afinion HbA1c/CRP/Lipid/ACR Control C I and C II)
LEVELS = ("C I", "C II")
#: (assay, level) -> the control lot: one lot per kit, kept for the whole simulation
CONTROL_LOTS = {
    ("HbA1c", "C I"): "10234567",
    ("HbA1c", "C II"): "10234568",
    ("CRP", "C I"): "10334567",
    ("CRP", "C II"): "10334568",
    ("Lipid Panel", "C I"): "10434567",
    ("Lipid Panel", "C II"): "10434568",
    ("ACR", "C I"): "10534567",
    ("ACR", "C II"): "10534568",
}


def _material(
    test: str, level: str, mean: float, sd: float, unit: str, decimals: int
) -> QcMaterial:
    assay = ASSAY_OF[test]
    return QcMaterial(
        test_code=test,
        level=level,
        lot=CONTROL_LOTS[(assay, level)],
        mean=mean,
        sd=sd,
        unit=unit,
        decimals=decimals,
        material=f"Afinion {assay} Control {level}",
    )


#: the controls' targets as the kit inserts would give them. Controls report HbA1c in IFCC
#: mmol/mol only (a lab sets one unit; patient runs here mix units to exercise the mapping).
#: The derived values (LDL, non-HDL, TC/HDL, ACR) follow from the measured ones and get no
#: target of their own.
QC_MATERIALS: tuple[QcMaterial, ...] = (
    _material("HbA1c", "C I", 36.0, 1.2, "mmol/mol", 0),
    _material("HbA1c", "C II", 81.0, 2.0, "mmol/mol", 0),
    _material("CRP", "C I", 24.0, 1.2, "mg/L", 0),
    _material("CRP", "C II", 80.0, 3.6, "mg/L", 0),
    _material("Chol", "C I", 4.10, 0.12, "mmol/L", 2),
    _material("HDL", "C I", 1.00, 0.04, "mmol/L", 2),
    _material("Trig", "C I", 1.30, 0.05, "mmol/L", 2),
    _material("Chol", "C II", 6.70, 0.20, "mmol/L", 2),
    _material("HDL", "C II", 1.80, 0.06, "mmol/L", 2),
    _material("Trig", "C II", 2.50, 0.09, "mmol/L", 2),
    _material("Alb", "C I", 22.0, 1.0, "mg/L", 0),
    _material("Creat", "C I", 5.0, 0.2, "mmol/L", 1),
    _material("Alb", "C II", 120.0, 5.0, "mg/L", 0),
    _material("Creat", "C II", 14.0, 0.5, "mmol/L", 1),
)
_TARGETS = by_key(QC_MATERIALS)


def _hba1c(rng: random.Random) -> Values:
    percent = rng.uniform(4.2, 13.0)
    if rng.random() < 0.5:  # sites report IFCC mmol/mol or NGSP %
        mmol = round((percent - 2.15) * 10.929)
        return (("HbA1c", str(mmol) if mmol <= 140 else ">140", "mmol/mol"),)
    if rng.random() < 0.03:
        return (("HbA1c", ">15.0", "%"),)
    return (("HbA1c", f"{percent:.1f}", "%"),)


def _crp(rng: random.Random) -> Values:
    if rng.random() < 0.4:
        return (("CRP", "<5", "mg/L"),)
    value = rng.choice((rng.uniform(5, 40), rng.uniform(40, 200), 250.0))
    return (("CRP", f"{value:.0f}" if value <= 200 else ">200", "mg/L"),)


def _lipids(rng: random.Random) -> Values:
    return _lipid_values(rng.uniform(2.8, 9.5), rng.uniform(0.6, 2.5), rng.uniform(0.5, 6.5))


def _lipid_values(chol: float, hdl: float, trig: float) -> Values:
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


def _acr(rng: random.Random) -> Values:
    return _acr_values(rng.uniform(2.0, 190.0), rng.uniform(1.5, 25.0))


def _acr_values(albumin: float, creatinine: float) -> Values:
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
    "HbA1c": _hba1c,
    "CRP": _crp,
    "Lipid Panel": _lipids,
    "ACR": _acr,
}


def _control_values(rng: random.Random, assay: str, level: str, control: ControlRun) -> Values:
    """One control cartridge of ``assay`` at ``level``: each measured value drawn around its
    target (``QC_MATERIALS``), the derived ones computed from them as for a patient."""
    if (assay, level) not in CONTROL_LOTS:
        raise ValueError(f"the Afinion 2 has no {assay} control {level!r} (levels: {LEVELS})")

    def value(test: str) -> float:
        return draw(rng, _TARGETS[(test, level)], control.shift_for(test))

    if assay == "Lipid Panel":
        return _lipid_values(value("Chol"), value("HDL"), value("Trig"))
    if assay == "ACR":
        return _acr_values(value("Alb"), value("Creat"))
    material = _TARGETS[(assay, level)]
    return ((assay, f"{value(assay):.{material.decimals}f}", material.unit),)


MODEL: AstmModel = Afinion2Model()
