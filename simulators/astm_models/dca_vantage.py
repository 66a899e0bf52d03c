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
        """One cartridge: HbA1c or the albumin/creatinine panel, patient or control."""
        require_aware(now)
        if qc and control.test:
            if control.test not in _CARTRIDGE_OF:
                raise ValueError(f"the DCA Vantage has no control for {control.test!r}")
            hba1c = _CARTRIDGE_OF[control.test] == "HbA1c"
        else:
            hba1c = rng.random() < 0.5
        levels = _LEVELS["HbA1c" if hba1c else "ACR"]
        level = (control.level or rng.choice(levels)) if qc else ""
        if qc:
            values = _control_values(rng, "HbA1c" if hba1c else "ACR", level, control)
        elif hba1c:
            values = _hba1c(rng, None)
        else:
            values = _acr(rng, None)
        return SimSample(
            specimen_id=f"{rng.randint(1, 999):03d}",
            patient_id="" if qc else patient_id,
            operator_id=operator_id,
            performed_at=now.astimezone(UTC).replace(microsecond=0),
            values=values,
            is_qc=qc,
            control_lot=CONTROL_LOTS[level] if qc else "",
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


#: cartridge -> its control levels (DCA HbA1c Normal/Abnormal, Microalbumin/Creatinine Low/High)
_LEVELS = {"HbA1c": ("Normal", "Abnormal"), "ACR": ("Low", "High")}
_CARTRIDGE_OF = {"HbA1c": "HbA1c", "Alb": "ACR", "Crt": "ACR", "Ratio": "ACR"}
#: level -> the control lot, kept for the whole simulation
CONTROL_LOTS = {"Normal": "41234", "Abnormal": "41235", "Low": "42234", "High": "42235"}


def _material(
    test: str, level: str, mean: float, sd: float, unit: str, decimals: int
) -> QcMaterial:
    kit = "DCA HbA1c Control" if test == "HbA1c" else "DCA Microalbumin/Creatinine Control"
    return QcMaterial(
        test_code=test,
        level=level,
        lot=CONTROL_LOTS[level],
        mean=mean,
        sd=sd,
        unit=unit,
        decimals=decimals,
        material=f"{kit} {level}",
    )


#: the controls' targets as the kit inserts would give them; controls report IFCC mmol/mol and
#: SI units only (patient runs mix units). The ratio follows from albumin and creatinine.
QC_MATERIALS: tuple[QcMaterial, ...] = (
    _material("HbA1c", "Normal", 36.0, 1.1, "mmol/mol", 0),
    _material("HbA1c", "Abnormal", 84.0, 2.0, "mmol/mol", 0),
    _material("Alb", "Low", 25.0, 1.0, "mg/L", 1),
    _material("Crt", "Low", 7.96, 0.30, "mmol/L", 2),
    _material("Alb", "High", 160.0, 6.4, "mg/L", 1),
    _material("Crt", "High", 15.91, 0.60, "mmol/L", 2),
)
_TARGETS = by_key(QC_MATERIALS)


def _control_values(rng: random.Random, cartridge: str, level: str, control: ControlRun) -> Values:
    """One control cartridge at ``level``: measured values drawn around their targets."""
    if level not in _LEVELS[cartridge]:
        raise ValueError(f"the DCA Vantage has no {cartridge} control {level!r}")

    def value(test: str) -> float:
        return draw(rng, _TARGETS[(test, level)], control.shift_for(test))

    if cartridge == "HbA1c":
        return (("HbA1c", f"{value('HbA1c'):.0f}", "mmol/mol"),)
    albumin, creatinine = value("Alb"), value("Crt")
    return (
        ("Alb", f"{albumin:.1f}", "mg/L"),
        ("Crt", f"{creatinine:.2f}", "mmol/L"),
        ("Ratio", f"{albumin / creatinine:.1f}", "mg/mmol"),
    )


MODEL: AstmModel = DcaVantageModel()
