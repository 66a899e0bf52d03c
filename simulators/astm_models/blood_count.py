"""A simulated complete blood count, for the haematology analysers' simulators.

The independent quantities are drawn (a patient) or taken near a control's targets (QC); the
indices follow from them (HCT from RBC and MCV, HGB from HCT and MCHC, ...), so a simulated
result is internally consistent, as a real analyser's is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


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


def control_blood(rng: random.Random, target: Blood, low: float, high: float) -> Blood:
    """A control run: each quantity within ``low``..``high`` times its target; the
    differential as assigned."""

    def near(x: float) -> float:
        return x * rng.uniform(low, high)

    return Blood(
        near(target.wbc), near(target.rbc), near(target.mcv), near(target.mchc),
        near(target.plt), near(target.rdw_cv), near(target.mpv), target.diff,
    )  # fmt: skip
