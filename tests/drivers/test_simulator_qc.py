"""The simulated analysers' controls: stable lots, values Gaussian around published targets, a
drift that moves them, and control runs asked for while the simulator runs."""

from __future__ import annotations

import asyncio
import random
import statistics
from datetime import UTC, datetime

import pytest

from drivers.analysers.profiles.afinion2 import PROFILE as AFINION2
from drivers.analysers.profiles.clinitek_status import PROFILE as CLINITEK
from gateway.errors import ConfigError
from simulators.astm_analyser import AstmAnalyserSim, AstmSimOptions
from simulators.astm_models import MODELS, AstmModel, ControlRun, QcMaterial, SimSample
from simulators.astm_models.afinion2 import MODEL as AFINION_MODEL
from simulators.astm_models.clinitek_status import MODEL as CLINITEK_MODEL
from simulators.astm_models.sysmex_xn import XN_MODEL
from tests.drivers import astm_profile_helpers as helpers
from tests.drivers.test_astm_simulator import HostEnd, tcp_host

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def control(model: AstmModel, rng: random.Random, run: ControlRun) -> SimSample:
    return model.sample(rng, operator_id="BH", qc=True, patient_id="", now=NOW, control=run)


def target(model: AstmModel, test: str, level: str) -> QcMaterial:
    return next(m for m in model.qc_materials if (m.test_code, m.level) == (test, level))


@pytest.mark.parametrize("key", sorted(MODELS))
def test_every_model_publishes_one_stable_lot_per_level_and_reports_it(key: str) -> None:
    model = MODELS[key]
    materials = model.qc_materials
    assert materials
    keys = [(m.test_code, m.level) for m in materials]
    assert len(keys) == len(set(keys))  # one target per test and level
    for m in materials:
        assert m.lot and m.material and m.unit is not None
        if m.kind == "quantitative":
            assert m.mean is not None and m.sd is not None and m.sd > 0
        else:
            assert m.mean is None and m.sd is None and m.expected
    targets = {(m.test_code, m.level): m for m in materials}
    levels_seen: set[str] = set()
    for seed in range(60):  # any run, any seed: the lot is the level's, the unit the target's
        sample = control(model, random.Random(seed), ControlRun())
        levels_seen.add(sample.control_level)
        for code, _value, unit in sample.values:
            material = targets.get((code, sample.control_level))
            if material is not None:  # derived values (LDL, ratios) have no target
                assert sample.control_lot == material.lot, (code, sample.control_level)
                assert unit == material.unit
    assert levels_seen == {m.level for m in materials}


def test_control_values_are_gaussian_around_the_target_and_the_drift_moves_them() -> None:
    rng = random.Random(2026)
    hba1c = target(AFINION_MODEL, "HbA1c", "C II")
    assert (hba1c.lot, hba1c.unit) == ("10234568", "mmol/mol")
    assert hba1c.mean is not None and hba1c.sd is not None

    def values(run: ControlRun) -> list[float]:
        return [float(control(AFINION_MODEL, rng, run).values[0][1]) for _ in range(3000)]

    good = values(ControlRun("HbA1c", "C II"))
    assert statistics.fmean(good) == pytest.approx(hba1c.mean, abs=0.1 * hba1c.sd)
    # printed as whole mmol/mol: rounding adds 1/12 to the variance
    assert statistics.stdev(good) == pytest.approx((hba1c.sd**2 + 1 / 12) ** 0.5, rel=0.1)
    # Gaussian, not uniform: a few values lie beyond 2 SD (about 5 %), none beyond 4.5 SD
    z = [(v - hba1c.mean) / hba1c.sd for v in good]
    assert 0.02 < sum(abs(x) > 2.25 for x in z) / len(z) < 0.08
    assert max(abs(x) for x in z) < 4.5

    drifted = values(ControlRun("HbA1c", "C II", shift_sd=2.5))
    assert statistics.fmean(drifted) == pytest.approx(hba1c.mean + 2.5 * hba1c.sd, abs=0.15)
    # a drift on other tests leaves this one alone
    elsewhere = values(ControlRun("HbA1c", "C II", shift_sd=2.5, shift_tests=("CRP",)))
    assert statistics.fmean(elsewhere) == pytest.approx(hba1c.mean, abs=0.1 * hba1c.sd)


def test_a_cbc_control_draws_each_parameter_around_its_target() -> None:
    rng = random.Random(5)
    runs = [control(XN_MODEL, rng, ControlRun("WBC", "high")) for _ in range(1500)]
    assert {(s.control_lot, s.control_level, s.specimen_id) for s in runs} == {
        ("82151403", "high", "QC-82151403")
    }
    for code in ("WBC", "HGB", "PLT"):
        material = target(XN_MODEL, code, "high")
        assert material.mean is not None and material.sd is not None
        got = [float(dict((c, v) for c, v, _u in s.values)[code]) for s in runs]
        assert statistics.fmean(got) == pytest.approx(material.mean, abs=0.15 * material.sd)
        assert statistics.stdev(got) == pytest.approx(material.sd, rel=0.15)


@pytest.mark.parametrize("level", ["Negative", "Positive"])
def test_urine_strip_controls_read_their_level_and_a_drift_does_not_change_categories(
    level: str,
) -> None:
    expected = {m.test_code: m.expected for m in CLINITEK_MODEL.qc_materials if m.level == level}
    for seed in range(20):
        sample = control(
            CLINITEK_MODEL, random.Random(seed), ControlRun("GLU", level, shift_sd=3.0)
        )
        assert {code: value for code, value, _unit in sample.values} == expected
        found = helpers.round_trip(CLINITEK, "urin-1", sample)
        flagged = sum(bool(o.abnormal_flags) for o in found)
        assert (flagged == 0) is (level == "Negative")  # negative pads, unflagged


def test_asking_for_a_control_the_model_has_not_fails_clearly() -> None:
    sim = AstmAnalyserSim(AFINION2, AstmSimOptions(seed=1, count=0))
    with pytest.raises(ConfigError, match="no control for 'WBC'"):
        sim.run_controls(["WBC"])
    with pytest.raises(ConfigError, match="no control level 'C III'"):
        sim.run_controls(["HbA1c"], levels=["C III"])
    # one run per lot and level: the lipid panel measures Chol, HDL and Trig in one cartridge
    assert sim.run_controls(["Chol", "HDL", "Trig"]) == 2
    assert sim.run_controls() == 8  # four kits, two levels each
    assert sim.controls_pending == 10


async def test_controls_asked_for_while_running_go_next_with_the_drift_switched_live() -> None:
    """Good QC, drifted QC (+2.5 SD), patients, good QC again: what the end-to-end test and
    the demo ask of a running simulator."""
    options = AstmSimOptions(seed=3, count=None, rate_per_s=10.0, operator_ids=("BH",))
    sim = AstmAnalyserSim(AFINION2, options)
    hba1c = {level: target(AFINION_MODEL, "HbA1c", level) for level in ("C I", "C II")}

    def controls() -> list[SimSample]:
        return [a.sample for a in sim.ledger.acked if a.sample.is_qc]

    async def sent(n: int) -> None:
        async with asyncio.timeout(20):
            while len(controls()) < n:  # noqa: ASYNC110 - polls the simulator's ledger
                await asyncio.sleep(0.02)

    async with tcp_host(HostEnd()) as connector:
        task = asyncio.create_task(sim.run(connector))
        try:
            assert sim.run_controls(["HbA1c"]) == 2
            await sent(2)
            options.qc_shift_sd, options.qc_shift_tests = 2.5, ("HbA1c",)
            sim.run_controls(["HbA1c"])
            sim.run_controls(["HbA1c"])
            await sent(6)
            patients_before = sum(not a.sample.is_qc for a in sim.ledger.acked)
            options.qc_shift_sd = 0.0
            await asyncio.sleep(0.5)  # patients go on meanwhile
            sim.run_controls(["HbA1c"])
            await sent(8)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert sum(not a.sample.is_qc for a in sim.ledger.acked) > patients_before > 0
    runs = controls()[:8]
    assert [s.control_level for s in runs] == ["C I", "C II"] * 4
    assert {s.control_lot for s in runs} == {"10234567", "10234568"}

    def z(sample: SimSample) -> float:
        ((code, value, unit),) = sample.values
        m = hba1c[sample.control_level]
        assert (code, unit) == ("HbA1c", "mmol/mol") and m.mean is not None and m.sd is not None
        return (float(value) - m.mean) / m.sd

    good, drifted, again = [z(s) for s in runs[:2]], [z(s) for s in runs[2:6]], runs[6:]
    assert all(abs(x) < 2 for x in good + [z(s) for s in again])
    assert statistics.fmean(drifted) > 1.0  # +2.5 SD; four values: the mean is +-0.5 SD
