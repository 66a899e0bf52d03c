"""A simulated complete blood count, for the haematology analysers' simulators.

A patient's independent quantities are drawn and the indices follow from them (HCT from RBC
and MCV, HGB from HCT and MCHC, ...), so a simulated result is internally consistent, as a real
analyser's is. A control run draws each parameter around the control's assigned value
(``control_materials``, ``control_values``), as the insert lists them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from simulators.astm_models.qc import ControlRun, QcMaterial, draw


@dataclass(frozen=True, slots=True)
class Blood:
    """The independent quantities a CBC is computed from."""

    wbc: float
    rbc: float
    mcv: float
    mchc: float
    plt: float
    rdw_cv: float
    mpv: float
    #: differential, %: neutrophils, lymphocytes, monocytes, eosinophils, basophils, and
    #: immature granulocytes where the analyser counts them
    diff: tuple[float, ...]

    def indices(self) -> dict[str, float]:
        """The counts and the red cell and platelet indices, under their common codes."""
        hct = self.rbc * self.mcv / 10
        hgb = hct * self.mchc / 100
        return {
            "WBC": self.wbc, "RBC": self.rbc, "HGB": hgb, "HCT": hct, "MCV": self.mcv,
            "MCH": hgb / self.rbc * 10, "MCHC": self.mchc, "PLT": self.plt,
            "RDW-CV": self.rdw_cv, "RDW-SD": self.rdw_cv * self.mcv * 0.034, "MPV": self.mpv,
        }  # fmt: skip


def patient_blood(
    rng: random.Random,
    *,
    rdw_cv: tuple[float, float],
    mpv: tuple[float, float],
    immature_granulocytes: bool,
) -> Blood:
    """A patient's CBC, from healthy to clearly abnormal; the five populations make up 100 %."""
    neut, lymph, mono = rng.uniform(35, 75), rng.uniform(15, 45), rng.uniform(3, 12)
    eo, baso = rng.uniform(0.5, 7), rng.uniform(0.1, 1.5)
    scale = 100 / (neut + lymph + mono + eo + baso)
    wbc, rbc = rng.uniform(2.5, 16.0), rng.uniform(3.4, 6.2)
    mcv, mchc, plt = rng.uniform(74, 104), rng.uniform(30.5, 36.5), rng.uniform(90, 520)
    rdw, volume = rng.uniform(*rdw_cv), rng.uniform(*mpv)
    diff: tuple[float, ...] = (neut * scale, lymph * scale, mono * scale, eo * scale, baso * scale)
    if immature_granulocytes:
        diff += (rng.uniform(0.0, 1.5),)
    return Blood(wbc, rbc, mcv, mchc, plt, rdw, volume, diff)


#: a control's SD as a share of its mean (CV), per parameter (fallback ``_DEFAULT_CV``): about
#: what haematology control inserts give for between-day imprecision
CONTROL_CV = {
    "WBC": 0.03, "RBC": 0.015, "HGB": 0.012, "HCT": 0.015, "MCV": 0.01, "MCH": 0.012,
    "MCHC": 0.012, "PLT": 0.04, "RDW-CV": 0.03, "RDW-SD": 0.03, "MPV": 0.03,
}  # fmt: skip
_DEFAULT_CV = 0.05


def control_materials(
    parameters: Iterable[tuple[str, str, int]],
    targets: Mapping[str, Mapping[str, float]],
    lots: Mapping[str, str],
    material: str,
) -> tuple[QcMaterial, ...]:
    """One material per (parameter, level): the mean is the level's target, the SD its CV of
    the mean but never below the parameter's last printed digit.

    ``parameters`` are (code, unit, decimals) as the analyser sends them; ``targets`` maps a
    level to each parameter's target value; ``lots`` a level to its lot.
    """
    menu = tuple(parameters)
    rows: list[QcMaterial] = []
    for level, quantities in targets.items():
        for code, unit, decimals in menu:
            mean = round(quantities[code], decimals + 1)
            sd = max(abs(mean) * CONTROL_CV.get(code, _DEFAULT_CV), 10.0**-decimals)
            rows.append(
                QcMaterial(
                    test_code=code,
                    level=level,
                    lot=lots[level],
                    mean=mean,
                    sd=round(sd, decimals + 2),
                    unit=unit,
                    decimals=decimals,
                    material=f"{material} {level}",
                )
            )
    return tuple(rows)


def control_values(
    rng: random.Random,
    materials: Mapping[tuple[str, str], QcMaterial],
    codes: Iterable[str],
    level: str,
    control: ControlRun,
) -> tuple[tuple[str, str, str], ...]:
    """A control run at ``level``: each parameter drawn around its target on its own (the
    control's assigned values, not a blood the indices follow from); never below zero."""
    values: list[tuple[str, str, str]] = []
    for code in codes:
        material = materials[(code, level)]
        value = max(0.0, draw(rng, material, control.shift_for(code)))
        values.append((code, f"{value:.{material.decimals}f}", material.unit))
    return tuple(values)
