"""The demo's quality control: the simulators' control lots registered at start, and the story
the demo plays while it runs.

Registration: every control material a simulated analyser runs (``QC_MATERIALS`` of its model,
``simulators.astm_models``) for a test with a `[[qc]]` entry becomes a control lot with the
manufacturer's mean and SD (qualitative strip controls: their expected answer), as a lab enters
a new lot from the insert. Each analyser then runs every level of those controls first, so QC
passes before the first patient results count.

The story (``QcStory``, stepped by the runner twice a second): a quarter into the run the
Afinion's HbA1c drifts by +2.5 SD; its controls fail (2-2s: both levels beyond 2 SD), the test
is locked out and its patient results are held (``qc_lockout``); from the drift until the lift
the analyser runs only the story's controls, no routine ones. Halfway, the lab acts: the
supervisor documents a corrective action (signed as that person:
``qc_state.record_corrective_action`` writes the signature), the drift is gone, the controls are
run again and, once a run is accepted, the lockout lifts. Without a duration (``trygg demo``
until Ctrl-C) the drift comes after 15 s and the lab acts after 30 s.

Any other lockout (controls drawn at random fail a rule now and then, as real ones do: a false
rejection) is met the way a lab meets one: after ``RESPONSE_S`` the supervisor documents the
check ("no error found, controls run again"), the analyser runs that test's controls again
until a run is accepted, and the lockout lifts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Final, Literal
from zoneinfo import ZoneInfo

from gateway.catalogue import text
from gateway.config import Config
from gateway.store import qc_state
from gateway.store.qc_counts import open_lockout
from gateway.store.qc_lots import add_lot, find_lot
from gateway.store.writer import Tx

if TYPE_CHECKING:
    from gateway.app import Gateway
    from gateway.demo.plan import AstmDemoSim
    from simulators.astm_analyser import AstmAnalyserSim

#: who registers the lots (as the demo's other set-up writes: ``gateway.demo.people.ACTOR``)
ACTOR: Final = "demo"
#: the instrument and test that drift, and the supervisor who documents the corrective action
#: (Bente: supervisor and certified on the Afinion in config/demo-people.csv)
DRIFT_INSTRUMENT: Final = "afinion-1"
DRIFT_TEST: Final = "HbA1c"
SUPERVISOR: Final = "bente"
#: the drift, in SDs of the control's target
DRIFT_SD: Final = 2.5
#: a lot's shelf life and its stability once opened, as on a typical insert
SHELF_DAYS: Final = 180
IN_USE_DAYS: Final = 30
#: seconds between repeated control runs while the story waits for a verdict
REPEAT_S: Final = 1.0
#: without a duration: when the drift starts and when the lab acts (seconds of simulation)
OPEN_ENDED_DRIFT_S: Final = 15.0
OPEN_ENDED_FIX_S: Final = 30.0
#: seconds from another lockout (not the story's) to the supervisor's response, and between
#: the looks for one
RESPONSE_S: Final = 5.0
LOOK_S: Final = 2.0

Phase = Literal["before", "drifting", "locked", "fixed", "lifted"]


def qc_tests(config: Config, entry: AstmDemoSim) -> list[str]:
    """The tests of ``entry``'s analyser that have controls and a `[[qc]]` entry, in the
    config's order."""
    codes = {m.test_code for m in entry.sim.model.qc_materials}
    tests = [qc.test for qc in config.qc if qc.test in codes]
    return [t for t in dict.fromkeys(tests) if config.qc_for(entry.instrument_id, t) is not None]


def register_lots(tx: Tx, config: Config, entries: Iterable[AstmDemoSim], today: date) -> int:
    """A writer job: register the control lots the simulated analysers run (module docstring),
    with their manufacturer targets; lots already registered are left alone. How many were
    added."""
    added = 0
    for entry in entries:
        for test in qc_tests(config, entry):
            qc = config.qc_for(entry.instrument_id, test)
            assert qc is not None  # qc_tests gave only tests with an entry
            for m in entry.sim.model.qc_materials:
                if m.test_code != test or (qc.levels and m.level not in qc.levels):
                    continue
                if find_lot(tx.conn, entry.instrument_id, m.test_code, m.level, m.lot):
                    continue
                quantitative = m.kind == "quantitative"
                add_lot(
                    tx,
                    instrument_id=entry.instrument_id,
                    test_code=m.test_code,
                    level=m.level,
                    lot=m.lot,
                    person=ACTOR,
                    material=m.material,
                    unit=m.unit,
                    kind=m.kind,
                    expected=m.expected,
                    expires_on=today + timedelta(days=SHELF_DAYS),
                    opened_on=today,
                    in_use_days=IN_USE_DAYS,
                    manufacturer_mean=str(m.mean) if quantitative else None,
                    manufacturer_sd=str(m.sd) if quantitative else None,
                    target_source="manufacturer" if quantitative else "",
                )
                added += 1
    return added


def start_controls(config: Config, entries: Iterable[AstmDemoSim]) -> int:
    """Each analyser runs every level of its controls first; how many runs were asked for."""
    return sum(entry.sim.run_controls(qc_tests(config, entry)) for entry in entries)


@dataclass
class QcStory:
    """The drift, the lockout and the lab's corrective action (module docstring).

    ``drift_at`` and ``fix_at`` are seconds since the analysers started; ``log`` holds what
    happened, in the site's language, for the screen and the summary.
    """

    sim: AstmAnalyserSim
    instrument_id: str
    test_code: str
    drift_at: float
    fix_at: float
    language: str
    phase: Phase = "before"
    lockout_id: int | None = None
    lockouts: list[int] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    #: instrument id -> its simulated analyser, for the lockouts that are not the story's
    others: dict[str, AstmAnalyserSim] = field(default_factory=dict)
    #: those lockouts being handled: id -> (instrument, test, when seen, response done)
    _other: dict[int, tuple[str, str, float, bool]] = field(default_factory=dict)
    _next_look: float = 0.0
    _next_run: float = 0.0
    _routine_share: float = 0.0

    async def step(self, gateway: Gateway, elapsed: float) -> None:
        """Move the story on at ``elapsed`` seconds since the analysers started."""
        await self._step_story(gateway, elapsed)
        if elapsed >= self._next_look:
            self._next_look = elapsed + LOOK_S
            await self._respond(gateway, elapsed)

    async def _step_story(self, gateway: Gateway, elapsed: float) -> None:
        if self.phase == "before" and elapsed >= self.drift_at:
            self.sim.options.qc_shift_sd = DRIFT_SD
            self.sim.options.qc_shift_tests = (self.test_code,)
            # the story's controls replace the analyser's routine ones until the lockout
            # lifts: routine drifted values after the failing run would count in the next
            # run's history, and a short run needs the analyser's line for patients too
            self.sim.options.qc_share = 0.0
            self._run_controls(elapsed)
            self.phase = "drifting"
            self._say("demo.qc.drift", sd=f"{DRIFT_SD:g}")
        elif self.phase == "drifting":
            if self._found_lockout(gateway):
                self.phase = "locked"
                self._say("demo.qc.locked", lockout=self.lockout_id)
            else:
                self._repeat(elapsed)  # a drifted run may still pass: the next one rarely does
        if self.phase == "locked" and elapsed >= self.fix_at:
            await self._correct(gateway, elapsed)
        elif self.phase == "fixed":
            still = self._open(gateway)
            if still is None:
                self._lifted()
            elif still != self.lockout_id:  # lifted, then a new run failed again: act again
                self.lockout_id = still
                self.lockouts.append(still)
                await self._correct(gateway, elapsed)
            else:
                self._repeat(elapsed)

    def __post_init__(self) -> None:
        self._routine_share = self.sim.options.qc_share

    def settle(self, gateway: Gateway) -> None:
        """After the analysers stopped: note a lift that came with the last runs judged."""
        if self.phase == "fixed" and self._open(gateway) is None:
            self._lifted()

    def _open(self, gateway: Gateway) -> int | None:
        with gateway.engine.connect() as conn:
            return open_lockout(conn, self.instrument_id, self.test_code)

    def _lifted(self) -> None:
        self.sim.options.qc_share = self._routine_share
        self.phase = "lifted"
        self._say("demo.qc.lifted", lockout=self.lockout_id)

    def _found_lockout(self, gateway: Gateway) -> bool:
        found = self._open(gateway)
        if found is None:
            return False
        self.lockout_id = found
        self.lockouts.append(found)
        return True

    async def _correct(self, gateway: Gateway, elapsed: float) -> None:
        """The supervisor documents the corrective action; the drift is gone; QC again."""
        lockout_id = self.lockout_id
        assert lockout_id is not None
        action = text(self.language, "demo.qc.corrective_action")

        def job(tx: Tx) -> bool:
            return qc_state.record_corrective_action(tx, lockout_id, text=action, person=SUPERVISOR)

        lifted = await gateway.writer.write(job)
        self.sim.options.qc_shift_sd = 0.0
        self._say("demo.qc.corrected", person=SUPERVISOR, action=action)
        self.phase = "fixed"
        if lifted:  # an accepted run had come already
            self._lifted()
            return
        self._run_controls(elapsed)

    async def _respond(self, gateway: Gateway, elapsed: float) -> None:
        """The lab's answer to the lockouts that are not the story's (module docstring)."""
        with gateway.engine.connect() as conn:
            found = [
                (lockout.id, lockout.instrument_id, lockout.test_code)
                for lockout in reversed(qc_state.list_lockouts(conn, open_only=True))
                if (lockout.instrument_id, lockout.test_code)
                != (self.instrument_id, self.test_code)
                and lockout.instrument_id in self.others
            ]
        still = {lockout_id for lockout_id, _, _ in found}
        for lockout_id, (instrument, test, _, _) in list(self._other.items()):
            if lockout_id not in still:
                del self._other[lockout_id]
                self._say_for(instrument, test, "demo.qc.lifted", lockout=lockout_id)
        for lockout_id, instrument, test in found:
            seen = self._other.get(lockout_id)
            if seen is None:
                self._other[lockout_id] = (instrument, test, elapsed, False)
                self._say_for(instrument, test, "demo.qc.other_locked", lockout=lockout_id)
                continue
            sim = self.others[instrument]
            if not seen[3] and elapsed - seen[2] >= RESPONSE_S:
                action = text(self.language, "demo.qc.rerun_action")

                def job(tx: Tx, lockout_id: int = lockout_id, action: str = action) -> bool:
                    return qc_state.record_corrective_action(
                        tx, lockout_id, text=action, person=SUPERVISOR
                    )

                await gateway.writer.write(job)
                self._other[lockout_id] = (instrument, test, seen[2], True)
                self._say_for(
                    instrument, test, "demo.qc.corrected", person=SUPERVISOR, action=action
                )
            if self._other[lockout_id][3] and sim.controls_pending == 0:
                sim.run_controls([test])

    def _run_controls(self, elapsed: float) -> None:
        self.sim.run_controls([self.test_code])
        self._next_run = elapsed + REPEAT_S

    def _repeat(self, elapsed: float) -> None:
        if elapsed >= self._next_run and self.sim.controls_pending == 0:
            self._run_controls(elapsed)

    def _say(self, key: str, **params: object) -> None:
        self._say_for(self.instrument_id, self.test_code, key, **params)

    def _say_for(self, instrument: str, test: str, key: str, **params: object) -> None:
        self.log.append(text(self.language, key, instrument=instrument, test=test, **params))


def plan_story(
    config: Config, entries: Iterable[AstmDemoSim], seconds: float | None
) -> QcStory | None:
    """The story on the drifting instrument, timed for a run of ``seconds`` of simulation
    (None: until stopped); None when the demo has no such instrument or `[[qc]]` entry."""
    entries = list(entries)
    entry = next((e for e in entries if e.instrument_id == DRIFT_INSTRUMENT), None)
    if entry is None or DRIFT_TEST not in qc_tests(config, entry):
        return None
    if seconds is None:
        drift_at, fix_at = OPEN_ENDED_DRIFT_S, OPEN_ENDED_FIX_S
    else:  # the same story in a short run: a quarter in, halfway
        drift_at, fix_at = min(OPEN_ENDED_DRIFT_S, seconds / 4), min(OPEN_ENDED_FIX_S, seconds / 2)
    return QcStory(
        sim=entry.sim,
        instrument_id=entry.instrument_id,
        test_code=DRIFT_TEST,
        drift_at=drift_at,
        fix_at=fix_at,
        language=config.site.language,
        others={e.instrument_id: e.sim for e in entries},
    )


def today_in(config: Config) -> date:
    return datetime.now(ZoneInfo(config.site.timezone)).date()


__all__ = [
    "DRIFT_INSTRUMENT",
    "DRIFT_TEST",
    "SUPERVISOR",
    "QcStory",
    "plan_story",
    "qc_tests",
    "register_lots",
    "start_controls",
    "today_in",
]
