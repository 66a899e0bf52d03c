"""A generic LIS2-A2 analyser as the simulator plays it: one to three tests per sample.

The layout is the standard positions the generic profile reads
(``drivers.analysers.profiles.astm_generic``): H, P, O, R..., L; for QC, O.3 is
``specimen^lot^level`` and O.12 is ``Q``. Controls: ``QC_MATERIALS``, two levels of one
multi-analyte control.
"""

from __future__ import annotations

import random
from datetime import datetime

from drivers.analysers.astm_base import format_astm_datetime
from drivers.protocols.astm.records import DEFAULT_DELIMITERS, Delimiters, Field, Record, text_field
from simulators.astm_models.qc import (
    ANY_CONTROL,
    ControlRun,
    QcMaterial,
    by_key,
    control_level,
    formatted,
)
from simulators.astm_models.sample import AstmModel, SimSample

#: (code, unit, low, high, decimals) of the values the simulator reports
_SIM_TESTS: tuple[tuple[str, str, float, float, int], ...] = (
    ("GLU", "mmol/L", 3.5, 12.0, 1),
    ("CRP", "mg/L", 1.0, 80.0, 0),
    ("HBA1C", "mmol/mol", 30.0, 80.0, 0),
    ("HGB", "g/dL", 10.0, 17.0, 1),
    ("ALB", "mg/L", 2.0, 200.0, 0),
)
_CODES = {code for code, *_ in _SIM_TESTS}
#: control level -> its lot (a multi-analyte control, levels 1 and 2), kept for the simulation
CONTROL_LOTS = {"1": "QC10231", "2": "QC10232"}
#: (code, level 1 mean, level 2 mean, CV): level 1 near the low end of the range, 2 high
_CONTROL_TARGETS = (
    ("GLU", 5.5, 16.0, 0.03),
    ("CRP", 10.0, 60.0, 0.05),
    ("HBA1C", 36.0, 81.0, 0.03),
    ("HGB", 12.0, 16.0, 0.015),
    ("ALB", 20.0, 150.0, 0.05),
)
_UNITS_DECIMALS = {code: (unit, decimals) for code, unit, _low, _high, decimals in _SIM_TESTS}


def _material(code: str, level: str, mean: float, cv: float) -> QcMaterial:
    unit, decimals = _UNITS_DECIMALS[code]
    return QcMaterial(
        test_code=code,
        level=level,
        lot=CONTROL_LOTS[level],
        mean=mean,
        sd=round(max(mean * cv, 10.0**-decimals), 3),
        unit=unit,
        decimals=decimals,
        material=f"Multichem {level}",
    )


QC_MATERIALS: tuple[QcMaterial, ...] = tuple(
    _material(code, level, low_mean if level == "1" else high_mean, cv)
    for level in CONTROL_LOTS
    for code, low_mean, high_mean, cv in _CONTROL_TARGETS
)
_TARGETS = by_key(QC_MATERIALS)


class GenericModel:
    """The simulated generic LIS2-A2 analyser (see the module docstring)."""

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
        """A random sample of one to three tests, measured ``now`` (whole seconds).

        A control run measures one to three tests of one level's control (``control``'s test
        among them when it names one), each value drawn around its target.
        """
        tests = rng.sample(_SIM_TESTS, k=rng.randint(1, 3))
        level = ""
        if qc:
            level = control_level(rng, control, "generic analyser", _CODES, tuple(CONTROL_LOTS))
            codes = [code for code, *_ in tests]
            if control.test and control.test not in codes:
                codes[0] = control.test
            values = tuple(
                (
                    code,
                    formatted(rng, _TARGETS[(code, level)], control.shift_for(code)),
                    _TARGETS[(code, level)].unit,
                )
                for code in codes
            )
        else:
            values = tuple(
                (code, f"{rng.uniform(low, high):.{decimals}f}", unit)
                for code, unit, low, high, decimals in tests
            )
        return SimSample(
            specimen_id=str(rng.randrange(10**9, 10**10)),
            patient_id="" if qc else patient_id,
            operator_id=operator_id,
            performed_at=now.replace(microsecond=0),
            values=values,
            is_qc=qc,
            control_lot=CONTROL_LOTS[level] if qc else "",
            control_level=level,
        )

    def message(
        self, sample: SimSample, delimiters: Delimiters = DEFAULT_DELIMITERS
    ) -> list[Record]:
        """H, P, O, R..., L as a standard LIS2-A2 analyser sends one sample."""
        stamp = format_astm_datetime(sample.performed_at)
        specimen: Field = (
            ((sample.specimen_id, sample.control_lot, sample.control_level),)
            if sample.is_qc
            else text_field(sample.specimen_id)
        )
        tests = tuple(("", "", "", code) for code, _, _ in sample.values)
        header = Record(
            "H",
            (
                text_field(delimiters.definition),
                *(text_field("") for _ in range(2)),
                (("Generic LIS2-A2", "1.0", sample.instrument_serial),),
                *(text_field("") for _ in range(6)),
                text_field("P"),
                text_field("LIS2-A2"),
                text_field(stamp),
            ),
        )
        patient = Record("P", (text_field("1"), text_field(sample.patient_id)))
        order_fields = [text_field("")] * 25
        order_fields[0] = text_field("1")
        order_fields[1] = specimen
        order_fields[3] = tests
        order_fields[4] = text_field("R")
        order_fields[10] = text_field("Q" if sample.is_qc else "N")
        order_fields[24] = text_field("F")
        results = [
            Record(
                "R",
                (
                    text_field(str(n)),
                    (("", "", "", code),),
                    text_field(value),
                    text_field(unit),
                    text_field(""),
                    text_field("N"),
                    text_field(""),
                    text_field("F"),
                    text_field(""),
                    text_field(sample.operator_id),
                    text_field(""),
                    text_field(stamp),
                    text_field(sample.instrument_serial),
                ),
            )
            for n, (code, value, unit) in enumerate(sample.values, start=1)
        ]
        terminator = Record("L", (text_field("1"), text_field("N")))
        return [header, patient, Record("O", tuple(order_fields)), *results, terminator]


MODEL: AstmModel = GenericModel()
