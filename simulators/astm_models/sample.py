"""What a simulated ASTM analyser reports for one sample, and what a model of one analyser does."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from drivers.protocols.astm.records import Delimiters, Record
from simulators.astm_models.qc import ANY_CONTROL, ControlRun, QcMaterial


@dataclass(frozen=True, slots=True)
class SimSample:
    """One sample the simulator reports: who ran it, on what, and the values it measured.

    ``values`` holds (instrument test code, value, unit) in the analyser's own codes. For QC,
    ``control_lot`` and ``control_level`` are set and ``patient_id`` is empty.
    """

    specimen_id: str
    patient_id: str
    operator_id: str
    performed_at: datetime
    values: tuple[tuple[str, str, str], ...]
    is_qc: bool = False
    control_lot: str = ""
    control_level: str = ""
    instrument_serial: str = "SIM0001"
    #: strip tests read by eye (urine analysers): their codes
    visual_codes: tuple[str, ...] = ()


class AstmModel(Protocol):
    """One analyser model as the simulator plays it: what it measures, and what it sends.

    ``sample`` draws one run (a patient's or a control's) from ``rng`` only, so a seed repeats a
    run exactly; ``message`` gives the records the analyser sends for it, H first and L last.
    A control run (``qc``) measures one of ``qc_materials`` (``simulators.astm_models.qc``):
    the one ``control`` asks for (a test's material, a level), else one at random, with
    ``control``'s drift.
    """

    @property
    def qc_materials(self) -> tuple[QcMaterial, ...]: ...

    def sample(
        self,
        rng: random.Random,
        *,
        operator_id: str,
        qc: bool,
        patient_id: str,
        now: datetime,
        control: ControlRun = ANY_CONTROL,
    ) -> SimSample: ...

    def message(self, sample: SimSample, delimiters: Delimiters = ...) -> list[Record]: ...
