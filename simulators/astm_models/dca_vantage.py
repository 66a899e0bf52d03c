"""Siemens DCA Vantage as the simulator plays it: one cartridge, and the records it sends.

The layout is the profile's (``drivers.analysers.profiles.dca_vantage``: its docstring gives
the field map and its sources): H, P, O, R (each but the ratio followed by its C correction), L.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from drivers.analysers.astm_base import format_astm_datetime
from drivers.analysers.profiles.dca_vantage import TEST_NAMES
from drivers.errors import LocalProtocolError
from drivers.protocols.astm.records import DEFAULT_DELIMITERS, Delimiters, Record
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

SENDER_NAME = "DCA VANTAGE"
SOFTWARE_VERSION = "04.04.00.00"


class DcaVantageModel:
    """The simulated DCA Vantage (see the module docstring)."""

    def message(
        self, sample: SimSample, delimiters: Delimiters = DEFAULT_DELIMITERS
    ) -> list[Record]:
        """The records a DCA Vantage sends for ``sample``: H, P, O, R (+C correction), L."""
        stamp = format_astm_datetime(sample.performed_at)
        for code, _, _ in sample.values:
            if code not in TEST_NAMES:
                raise LocalProtocolError(f"the DCA Vantage does not measure {code!r}", field="R.3")
        records = [
            simulated_header(
                delimiters, (SENDER_NAME, SOFTWARE_VERSION, sample.instrument_serial), stamp
            ),
            build_record("P", {2: "1", 3: patient_or_control(sample)}),
            build_record(
                "O",
                {
                    2: "1",
                    4: (sample.specimen_id, _reagent_lot(sample)),
                    12: "Q" if sample.is_qc else "",
                    26: "F",
                },
            ),
        ]
        results = simulated_results(
            sample.values,
            comparator_flag,
            operator_id=sample.operator_id,
            stamp=stamp,
            time_field=12,
        )
        for result, (code, _, unit) in zip(results, sample.values, strict=True):
            records.append(result)
            if code == "HbA1c":
                primary = "IFCC" if unit == "mmol/mol" else "NGSP"
                records.append(
                    build_record(
                        "C", {2: "1", 3: "I", 4: ("1.000", f"0.0 {unit}", primary), 5: "G"}
                    )
                )
            elif code != "Ratio":
                records.append(
                    build_record("C", {2: "1", 3: "I", 4: ("1.000", f"0.0 {unit}"), 5: "G"})
                )
        records.append(TERMINATOR)
        return records

    def sample(
        self, rng: random.Random, *, operator_id: str, qc: bool, patient_id: str, now: datetime
    ) -> SimSample:
        """One cartridge: HbA1c or the albumin/creatinine panel, patient or control."""
        require_aware(now)
        hba1c = rng.random() < 0.5
        if hba1c:
            level = rng.choice(("Normal", "Abnormal")) if qc else ""
            values = _hba1c(rng, {"Normal": 5.4, "Abnormal": 9.8}.get(level))
        else:
            level = rng.choice(("Low", "High")) if qc else ""
            values = _acr(rng, {"Low": (25.0, 90.0), "High": (160.0, 180.0)}.get(level))
        return SimSample(
            specimen_id=f"{rng.randint(1, 999):03d}",
            patient_id="" if qc else patient_id,
            operator_id=operator_id,
            performed_at=now.astimezone(UTC).replace(microsecond=0),
            values=values,
            is_qc=qc,
            control_lot=f"{rng.randint(10000, 99999)}" if qc else "",
            control_level=level,
            instrument_serial=f"S0{rng.randint(0, 99999):05d}",
        )


def _reagent_lot(sample: SimSample) -> str:
    """A plausible 4-digit cartridge lot, stable for one test and month."""
    test = "1" if any(code == "HbA1c" for code, _, _ in sample.values) else "2"
    return f"{sample.performed_at.year % 10}{sample.performed_at.month:02d}{test}"


Values = tuple[tuple[str, str, str], ...]


def _hba1c(rng: random.Random, centre: float | None) -> Values:
    percent = rng.gauss(centre, centre * 0.02) if centre is not None else rng.uniform(4.0, 13.5)
    if centre is None and rng.random() < 0.03:
        percent = rng.choice((2.0, 15.0))
    if rng.random() < 0.5:  # IFCC primary reporting unit
        mmol = round((percent - 2.15) * 10.929)
        text = "<4" if mmol < 4 else ">130" if mmol > 130 else str(mmol)
        return (("HbA1c", text, "mmol/mol"),)
    text = "<2.5" if percent < 2.5 else ">14.0" if percent > 14.0 else f"{percent:.1f}"
    return (("HbA1c", text, "%"),)


def _acr(rng: random.Random, centre: tuple[float, float] | None) -> Values:
    """Albumin mg/L, creatinine and the ratio, in conventional or SI units."""
    if centre is None:
        albumin, creatinine_mg_dl = rng.uniform(3.0, 320.0), rng.uniform(20.0, 400.0)
    else:
        albumin, creatinine_mg_dl = (rng.gauss(c, c * 0.04) for c in centre)
    si = rng.random() < 0.5
    creatinine = creatinine_mg_dl * 0.0884 if si else creatinine_mg_dl
    ratio = albumin / creatinine if si else albumin / creatinine_mg_dl * 100
    units = ("mmol/L", "mg/mmol") if si else ("mg/dL", "mg/g")
    if albumin < 5.0:
        alb_text, ratio_text = "<5", f"<{5.0 / creatinine * (1 if si else 100):.1f}"
    elif albumin > 300.0:
        alb_text, ratio_text = ">300", f">{300.0 / creatinine * (1 if si else 100):.1f}"
    else:
        alb_text, ratio_text = f"{albumin:.1f}", f"{ratio:.1f}"
    return (
        ("Alb", alb_text, "mg/L"),
        ("Crt", f"{creatinine:.2f}" if si else f"{creatinine:.1f}", units[0]),
        ("Ratio", ratio_text, units[1]),
    )


MODEL: AstmModel = DcaVantageModel()
