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

    def sample(
        self, rng: random.Random, *, operator_id: str, qc: bool, patient_id: str, now: datetime
    ) -> SimSample:
        """One cartridge run: a random assay, patient values or a control near its target."""
        require_aware(now)
        assay = rng.choice(("HbA1c", "CRP", "Lipid Panel", "ACR"))
        level = rng.choice(("C I", "C II")) if qc else ""
        values = _CONTROL_VALUES[assay](rng, level) if qc else _PATIENT_VALUES[assay](rng)
        return SimSample(
            specimen_id=str(rng.randint(1, 9999)),
            patient_id="" if qc else patient_id,
            operator_id=operator_id,
            performed_at=now.astimezone(UTC).replace(microsecond=0),
            values=values,
            is_qc=qc,
            control_lot=f"{rng.randint(10200000, 10299999)}" if qc else "",
            control_level=level,
            instrument_serial=f"AF2{rng.randint(0, 9999999):07d}",
        )


def _cartridge_lot(assay: str, performed_at: datetime) -> str:
    """A plausible 8-digit cartridge lot, stable for one assay and month."""
    prefix = {"HbA1c": "22", "CRP": "23", "Lipid Panel": "24", "ACR": "25"}.get(assay, "29")
    return f"10{prefix}{performed_at:%y%m}"


Values = tuple[tuple[str, str, str], ...]


def _hba1c(rng: random.Random, centre: float | None = None) -> Values:
    percent = rng.gauss(centre, centre * 0.02) if centre is not None else rng.uniform(4.2, 13.0)
    if rng.random() < 0.5:  # sites report IFCC mmol/mol or NGSP %
        mmol = round((percent - 2.15) * 10.929)
        return (("HbA1c", str(mmol) if mmol <= 140 else ">140", "mmol/mol"),)
    if centre is None and rng.random() < 0.03:
        return (("HbA1c", ">15.0", "%"),)
    return (("HbA1c", f"{percent:.1f}", "%"),)


def _crp(rng: random.Random, centre: float | None = None) -> Values:
    if centre is None:
        if rng.random() < 0.4:
            return (("CRP", "<5", "mg/L"),)
        value = rng.choice((rng.uniform(5, 40), rng.uniform(40, 200), 250.0))
    else:
        value = rng.gauss(centre, centre * 0.05)
    return (("CRP", f"{value:.0f}" if value <= 200 else ">200", "mg/L"),)


def _lipids(rng: random.Random, centre: tuple[float, float, float] | None = None) -> Values:
    if centre is None:
        chol, hdl, trig = rng.uniform(2.8, 9.5), rng.uniform(0.6, 2.5), rng.uniform(0.5, 6.5)
    else:
        chol, hdl, trig = (rng.gauss(c, c * 0.03) for c in centre)
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


def _acr(rng: random.Random, centre: tuple[float, float] | None = None) -> Values:
    if centre is None:
        albumin, creatinine = rng.uniform(2.0, 190.0), rng.uniform(1.5, 25.0)
    else:
        albumin, creatinine = (rng.gauss(c, c * 0.04) for c in centre)
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
    "HbA1c": lambda rng: _hba1c(rng),
    "CRP": lambda rng: _crp(rng),
    "Lipid Panel": lambda rng: _lipids(rng),
    "ACR": lambda rng: _acr(rng),
}
#: control targets per level (Afinion controls C I and C II)
_CONTROL_VALUES: dict[str, Callable[[random.Random, str], Values]] = {
    "HbA1c": lambda rng, level: _hba1c(rng, 5.4 if level == "C I" else 9.6),
    "CRP": lambda rng, level: _crp(rng, 24.0 if level == "C I" else 80.0),
    "Lipid Panel": lambda rng, level: _lipids(
        rng, (4.1, 1.0, 1.3) if level == "C I" else (6.7, 1.8, 2.5)
    ),
    "ACR": lambda rng, level: _acr(rng, (22.0, 5.0) if level == "C I" else (120.0, 14.0)),
}


MODEL: AstmModel = Afinion2Model()
