"""The simulated analysers' control materials: stable lots, and values drawn around a target.

A real lab runs the same control lot for months, and its values scatter around the lot's
assigned mean with the method's SD; that is what lets a QC history (Levey-Jennings, Westgard)
form. So each model publishes ``QC_MATERIALS``: one ``QcMaterial`` per (test code, level), with
a lot that never changes and the mean and SD the manufacturer's insert would give. A control
run draws each value Gaussian around that mean (``draw``), shifted by ``ControlRun.shift_sd``
SDs when the simulated analyser has drifted. Qualitative controls (urine strip Chek-Stix)
carry the category each level must read (``expected``) instead of a mean and SD.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

QcKind = Literal["quantitative", "qualitative"]


@dataclass(frozen=True, slots=True)
class QcMaterial:
    """One control level for one test: the lot the analyser reports and its target.

    ``mean`` and ``sd`` are in ``unit``, as the analyser reports the value (``decimals``).
    Qualitative levels have ``expected`` (the category it must read) and no mean or SD.
    """

    test_code: str
    level: str
    lot: str
    mean: float | None
    sd: float | None
    unit: str
    decimals: int = 1
    #: the control product, as a lab would name it in its QC log
    material: str = ""
    kind: QcKind = "quantitative"
    expected: str = ""


@dataclass(frozen=True, slots=True)
class ControlRun:
    """A control run asked for: which test's material (``""`` any), which level (``""`` any),
    and the drift of the analyser for this run: values move by ``shift_sd`` SDs on the tests
    in ``shift_tests`` (empty: every test)."""

    test: str = ""
    level: str = ""
    shift_sd: float = 0.0
    shift_tests: tuple[str, ...] = ()

    def shift_for(self, test_code: str) -> float:
        """The shift, in SDs, that applies to ``test_code`` in this run."""
        if self.shift_tests and test_code not in self.shift_tests:
            return 0.0
        return self.shift_sd


#: a control run at random (a random material and level, no drift)
ANY_CONTROL = ControlRun()


def draw(rng: random.Random, material: QcMaterial, shift_sd: float = 0.0) -> float:
    """One control value: Gaussian around the material's mean with its SD, moved by
    ``shift_sd`` SDs (a drifted analyser). Not rounded: the caller formats it."""
    if material.mean is None or material.sd is None:
        raise ValueError(f"{material.test_code} {material.level}: a qualitative control")
    return rng.gauss(material.mean, material.sd) + shift_sd * material.sd


def formatted(rng: random.Random, material: QcMaterial, shift_sd: float = 0.0) -> str:
    """``draw`` as the analyser prints it (the material's decimals)."""
    return f"{draw(rng, material, shift_sd):.{material.decimals}f}"


def control_level(
    rng: random.Random,
    control: ControlRun,
    analyser: str,
    tests: Collection[str],
    levels: Sequence[str],
) -> str:
    """The level a control run measures: the one ``control`` asks for, else one of ``levels``
    at random. A test or level the analyser has no control for is a ValueError (a caller's
    mistake, said at once rather than as a run of nothing)."""
    if control.test and control.test not in tests:
        raise ValueError(f"the {analyser} has no control for {control.test!r}")
    if control.level and control.level not in levels:
        raise ValueError(f"the {analyser} has no control level {control.level!r}")
    return control.level or rng.choice(levels)


def by_key(materials: Iterable[QcMaterial]) -> dict[tuple[str, str], QcMaterial]:
    """(test code, level) -> material."""
    return {(m.test_code, m.level): m for m in materials}


def levels_of(materials: Iterable[QcMaterial], test_code: str) -> tuple[str, ...]:
    """The control levels for ``test_code``, in table order."""
    return tuple(dict.fromkeys(m.level for m in materials if m.test_code == test_code))


__all__ = [
    "ANY_CONTROL",
    "ControlRun",
    "QcKind",
    "QcMaterial",
    "by_key",
    "control_level",
    "draw",
    "formatted",
    "levels_of",
]
