"""A generic LIS2-A2 analyser as the simulator plays it: one to three tests per sample.

The layout is the standard positions the generic profile reads
(``drivers.analysers.profiles.astm_generic``): H, P, O, R..., L; for QC, O.3 is
``specimen^lot^level`` and O.12 is ``Q``.
"""

from __future__ import annotations

import random
from datetime import datetime

from drivers.analysers.astm_base import format_astm_datetime
from drivers.protocols.astm.records import DEFAULT_DELIMITERS, Delimiters, Field, Record, text_field
from simulators.astm_models.sample import AstmModel, SimSample

#: (code, unit, low, high, decimals) of the values the simulator reports
_SIM_TESTS: tuple[tuple[str, str, float, float, int], ...] = (
    ("GLU", "mmol/L", 3.5, 12.0, 1),
    ("CRP", "mg/L", 1.0, 80.0, 0),
    ("HBA1C", "mmol/mol", 30.0, 80.0, 0),
    ("HGB", "g/dL", 10.0, 17.0, 1),
    ("ALB", "mg/L", 2.0, 200.0, 0),
)


class GenericModel:
    """The simulated generic LIS2-A2 analyser (see the module docstring)."""

    def sample(
        self, rng: random.Random, *, operator_id: str, qc: bool, patient_id: str, now: datetime
    ) -> SimSample:
        """A random sample of one to three tests, measured ``now`` (whole seconds)."""
        tests = rng.sample(_SIM_TESTS, k=rng.randint(1, 3))
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
            control_lot=f"QC{rng.randrange(10_000, 100_000)}" if qc else "",
            control_level=rng.choice(("1", "2")) if qc else "",
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
