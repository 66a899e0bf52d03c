"""The live QC judge through the real ingest path: failing controls lock the instrument's test
out (status, lockout, deviation, facts), the next patient result is held ``qc_lockout``; the
lockout lifts only after an accepted run AND a corrective action; then the held results are
released. Targets from the first N values, a new lot restarting the history, overdue by the
schedule's due time, and the every_n count."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from drivers.model import InboundMessage, Observation
from gateway.cli import app
from gateway.config import LisConfig, load_config
from gateway.holds.outcome import Refusal
from gateway.holds.qc_lockout import release_lockout_results
from gateway.holds.sign_off import override, release
from gateway.ingest import store_message
from gateway.lis.oru import build_oru
from gateway.lis.outbox import unassigned_queued
from gateway.rule_context import current_context
from gateway.rules import context_from_config
from gateway.rules.facts import QcStatus
from gateway.store import facts as store_facts
from gateway.store import qc_lots, qc_state
from gateway.store.tables import (
    audit,
    deviation_events,
    deviations,
    qc_evaluations,
    qc_status,
    results,
)
from gateway.store.writer import Tx, run_in_transaction
from tests.gateway.hold_site import NOW, PASSWORD, SITE, Site, make_site

QC = """
[[qc]]
test = "HbA1c"
instrument = "afinion-1"
levels = ["1", "2"]
schedule = "{schedule}"
every_n = {every_n}
target_source = "{source}"
first_n = 3
lockout = "{lockout}"
"""


def qc_site(
    tmp_path: Path,
    schedule: str = "none",
    every_n: int = 0,
    source: str = "manufacturer",
    passwords: tuple[str, ...] = (),
    lockout: str = "hold",
    url: str | None = None,
) -> Site:
    site = make_site(tmp_path, url, passwords=passwords)
    text = SITE.format(url=site.config.store.url) + QC.format(
        schedule=schedule, every_n=every_n, source=source, lockout=lockout
    )
    site.path.write_text(text, encoding="utf-8")
    site.config = load_config(site.path)
    site.base = context_from_config(site.config)
    return site


@pytest.fixture
def site(tmp_path: Path, store_url: str) -> Iterator[Site]:
    """On SQLite and on PostgreSQL (the store's QC SQL runs on both)."""
    made = qc_site(tmp_path, url=store_url)
    yield made
    made.engine.dispose()


def add_lots(
    site: Site, lot: str = "L1", mean: str = "48", sd: str = "2", at: datetime | None = None
) -> None:
    def job(tx: Tx) -> None:
        for level in ("1", "2"):
            qc_lots.add_lot(
                tx,
                instrument_id="afinion-1",
                test_code="HbA1c",
                level=level,
                lot=lot,
                person="kari",
                manufacturer_mean=mean,
                manufacturer_sd=sd,
            )

    run_in_transaction(site.engine, job, at or NOW - timedelta(days=2))


_raw = iter(range(10_000))


def controls(site: Site, *values: str, at: datetime, lot: str = "L1") -> None:
    """One run: a control per level (1, 2, ...) with ``values``, ingested as one message."""
    obs = tuple(
        Observation(
            "afinion-1",
            "HbA1c",
            value,
            performed_at=at,
            operator_id="OLA",
            is_qc=True,
            control_lot=lot,
            control_level=str(level),
        )
        for level, value in enumerate(values, start=1)
    )
    message = InboundMessage("afinion-1", "astm", f"qc {next(_raw)}".encode(), at, observations=obs)
    run_in_transaction(
        site.engine, lambda tx: store_message(tx, message, current_context(tx, site.base)), at
    )


def status(site: Site) -> dict[str, object]:
    with site.engine.connect() as conn:
        return dict(conn.execute(select(qc_status)).mappings().one())


def verdicts(site: Site) -> list[str]:
    with site.engine.connect() as conn:
        return list(
            conn.execute(select(qc_evaluations.c.verdict).order_by(qc_evaluations.c.id)).scalars()
        )


def lockout_id(site: Site) -> int:
    found = status(site)["lockout_id"]
    assert isinstance(found, int)
    return found


def version(site: Site) -> int:
    return run_in_transaction(site.engine, lambda tx: store_facts.current(tx).number, NOW)


def test_failing_controls_lock_out_and_the_lift_needs_both(site: Site) -> None:
    add_lots(site)
    t0 = NOW - timedelta(hours=3)
    controls(site, "48.5", "47", at=t0)
    assert status(site)["status"] == QcStatus.IN_CONTROL
    before = version(site)
    controls(site, "55", "48", at=t0 + timedelta(hours=1))  # level 1 at +3.5 SD: 1-3s
    assert version(site) > before
    row = status(site)
    assert row["status"] == QcStatus.OUT_OF_CONTROL and row["lockout_id"] is not None
    with site.engine.connect() as conn:
        (deviation,) = conn.execute(select(deviations)).all()
        lockout = qc_state.get_lockout(conn, lockout_id(site))
        evaluation = conn.execute(
            select(qc_evaluations).where(qc_evaluations.c.verdict == "reject")
        ).one()
    assert (deviation.kind, deviation.category) == ("qc_failure", "equipment")
    assert "HbA1c" in deviation.summary and "afinion-1" in deviation.summary
    assert "1-3s" in deviation.summary
    assert lockout is not None and lockout.cause == "out_of_control" and lockout.rules == "1-3s"
    assert (evaluation.target_mean, evaluation.target_sd, evaluation.target_source) == (
        "48",
        "2",
        "manufacturer",
    )
    assert {v["rule"] for v in json.loads(evaluation.violations)} == {"1-2s", "1-3s"}

    held = site.ingest(specimen="P1")
    assert "qc_lockout" in site.open_reasons(held)
    refused = site.act(lambda tx, ctx: release(tx, held, "sven", note="ok", context=ctx))
    assert (refused.done, refused.code) == (False, Refusal.LOCKOUT_OPEN)

    # an accepted run alone does not lift it
    controls(site, "48", "48.4", at=NOW - timedelta(minutes=30))
    assert status(site)["status"] == QcStatus.OUT_OF_CONTROL
    # an operator may not document the corrective action
    with pytest.raises(ValueError):
        run_in_transaction(
            site.engine,
            lambda tx: qc_state.record_corrective_action(
                tx, lockout_id(site), text="x", person="ola"
            ),
            NOW,
        )
    lid = lockout_id(site)
    lifted = run_in_transaction(
        site.engine,
        lambda tx: qc_state.record_corrective_action(
            tx, lid, text="Ny kontrollflaske åpnet, kontroll kjørt på nytt", person="sven"
        ),
        NOW,
    )
    assert lifted is True
    row = status(site)
    assert row["status"] == QcStatus.IN_CONTROL and row["lockout_id"] is None
    with site.engine.connect() as conn:
        done = qc_state.get_lockout(conn, lid)
        assert done is not None and done.lifted_at is not None
        assert conn.execute(select(deviations.c.corrective_action)).scalar_one().startswith("Ny")
        actions = list(conn.execute(select(deviation_events.c.action)).scalars())
        assert "corrective_action" in actions
    # the held result stays held until it is released
    assert "qc_lockout" in site.open_reasons(held)
    outcomes = run_in_transaction(
        site.engine,
        lambda tx: release_lockout_results(tx, lid, "sven", "Kontroll godkjent", context=site.base),
        NOW,
    )
    assert [o.done for o in outcomes] == [True]
    assert "qc_lockout" not in site.open_reasons(held)
    assert "qc_lockout" not in site.open_reasons(site.ingest(specimen="P2"))


def test_corrective_action_alone_does_not_lift(site: Site) -> None:
    add_lots(site)
    controls(site, "42", "48", at=NOW - timedelta(hours=2))  # -3 SD: 1-3s
    lid = lockout_id(site)
    lifted = run_in_transaction(
        site.engine,
        lambda tx: qc_state.record_corrective_action(tx, lid, text="Rengjort", person="kari"),
        NOW - timedelta(hours=1),
    )
    assert lifted is False and status(site)["status"] == QcStatus.OUT_OF_CONTROL
    # a failing run does not lift either
    controls(site, "41", "48", at=NOW - timedelta(minutes=50))
    assert status(site)["status"] == QcStatus.OUT_OF_CONTROL
    # the override lets one result out, with a deviation
    held = site.ingest(specimen="P9")
    out = site.act(lambda tx, ctx: override(tx, held, "kari", reason="Haster", context=ctx))
    assert out.done, out.code
    with site.engine.connect() as conn:
        kinds = list(conn.execute(select(deviations.c.kind)).scalars())
    assert "qc_lockout_override" in kinds
    controls(site, "48", "48", at=NOW - timedelta(minutes=40))  # accepted: now it lifts
    assert status(site)["status"] == QcStatus.IN_CONTROL


def test_first_n_target_after_n_values(tmp_path: Path) -> None:
    site = qc_site(tmp_path, source="first_n")
    start = NOW - timedelta(days=3)
    for i, (a, b) in enumerate([("47", "60"), ("48", "62"), ("49", "61")]):
        controls(site, a, b, at=start + timedelta(hours=i * 2))
    assert verdicts(site) == ["no_target"] * 6
    assert status(site)["status"] == QcStatus.NO_QC
    with site.engine.connect() as conn:
        lots = qc_lots.list_lots(conn, instrument_id="afinion-1")
    assert {lot.level: lot.target.mean if lot.target else None for lot in lots} == {
        "1": 48,
        "2": 61,
    }
    assert all(lot.target and lot.target.source == "first_n" for lot in lots)
    controls(site, "48.2", "61.5", at=start + timedelta(hours=8))
    assert verdicts(site)[-2:] == ["accept", "accept"]
    assert status(site)["status"] == QcStatus.IN_CONTROL


def test_rolling_target_follows_the_last_n_accepted_values(tmp_path: Path) -> None:
    """``target_source = "rolling"`` (first_n 3): the first 3 values set the target, then
    every accepted run moves it to the mean and SD of the lot's last 3 judged values."""
    site = qc_site(tmp_path, source="rolling")
    start = NOW - timedelta(days=3)
    level_1 = ["47", "48", "49", "48.5", "47.5", "48.8", "48.1"]
    for i, a in enumerate(level_1):
        controls(site, a, str(60 + i % 3), at=start + timedelta(hours=i * 2))
    with site.engine.connect() as conn:
        (lot,) = [x for x in qc_lots.list_lots(conn, instrument_id="afinion-1") if x.level == "1"]
        sources = list(
            conn.execute(
                select(qc_evaluations.c.target_source)
                .where(qc_evaluations.c.level == "1")
                .order_by(qc_evaluations.c.id)
            ).scalars()
        )
    last_3 = [float(v) for v in level_1[-3:]]
    assert lot.target is not None and lot.target.source == "rolling"
    assert float(lot.target.mean) == pytest.approx(statistics.mean(last_3), abs=1e-4)
    assert float(lot.target.sd) == pytest.approx(statistics.stdev(last_3), abs=1e-4)
    assert verdicts(site)[-2:] == ["accept", "accept"]
    # judged first against the first-N target, then against the rolling one
    assert sources[3] == "first_n" and sources[-1] == "rolling"


def test_a_new_lot_restarts_the_history(site: Site) -> None:
    add_lots(site)
    add_lots(site, lot="L2", mean="50", sd="2")
    t = NOW - timedelta(hours=5)
    controls(site, "52.5", "48", at=t)  # level 1 at +2.25 SD: 1-2s warning
    assert status(site)["status"] == QcStatus.WARNING
    controls(site, "55", "50", at=t + timedelta(hours=1), lot="L2")  # +2.5 SD on the new lot
    assert verdicts(site)[-2] == "warning"  # no 2-2s across the lots
    controls(site, "54.5", "50", at=t + timedelta(hours=2), lot="L2")  # same lot: 2-2s
    assert verdicts(site)[-2] == "reject"
    assert status(site)["status"] == QcStatus.OUT_OF_CONTROL


def test_overdue_by_due_time(tmp_path: Path) -> None:
    site = qc_site(tmp_path, schedule="daily")
    add_lots(site)
    controls(site, "48", "48", at=NOW - timedelta(days=1))  # yesterday: due at midnight
    row = status(site)
    assert row["status"] == QcStatus.IN_CONTROL and row["due_at"] is not None
    held = site.ingest(specimen="P1")  # performed today: controls were due
    assert "qc_lockout" in site.open_reasons(held)
    marked = run_in_transaction(
        site.engine, lambda tx: qc_state.mark_overdue(tx, site.base.qc), NOW
    )
    assert marked == [("afinion-1", "HbA1c")]
    assert status(site)["status"] == QcStatus.OVERDUE
    with site.engine.connect() as conn:
        assert conn.execute(select(deviations.c.kind)).scalar_one() == "qc_overdue"
        lockout = qc_state.get_lockout(conn, lockout_id(site))
    assert lockout is not None and lockout.cause == "overdue"


def test_new_lot_schedule_makes_controls_due_when_a_lot_is_registered(tmp_path: Path) -> None:
    """``schedule = "new_lot"``: no time limit; registering a new lot makes the controls due
    at once, so results performed after it are held until the new lot's run is accepted."""
    site = qc_site(tmp_path, schedule="new_lot")
    add_lots(site)
    controls(site, "48", "48", at=NOW - timedelta(days=1))
    assert status(site)["due_at"] is None
    before = site.ingest(specimen="P0", performed_at=NOW - timedelta(hours=3))
    assert site.open_reasons(before) == []
    add_lots(site, lot="L2", at=NOW - timedelta(hours=2))
    due = status(site)["due_at"]
    assert isinstance(due, datetime)
    held = site.ingest(specimen="P1", performed_at=NOW - timedelta(hours=1))
    assert "qc_lockout" in site.open_reasons(held)
    controls(site, "48.3", "47.9", at=NOW - timedelta(minutes=30), lot="L2")
    assert status(site)["status"] == QcStatus.IN_CONTROL and status(site)["due_at"] is None
    after = site.ingest(specimen="P2", performed_at=NOW - timedelta(minutes=10))
    assert site.open_reasons(after) == []


def test_every_n_counts_patient_samples(tmp_path: Path) -> None:
    site = qc_site(tmp_path, schedule="every_n", every_n=2)
    add_lots(site)
    controls(site, "48", "48", at=NOW - timedelta(hours=1))
    first = site.ingest(specimen="P1")
    second = site.ingest(specimen="P2")
    assert status(site)["patients_since"] == 2
    assert status(site)["status"] == QcStatus.OVERDUE
    third = site.ingest(specimen="P3")
    assert [bool(site.open_reasons(r)) for r in (first, second, third)] == [False, False, True]
    with site.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(deviations)).scalar_one() == 1


def test_flag_mode_lets_results_go_on_with_a_note(tmp_path: Path) -> None:
    """``lockout = "flag"``: out of control, the result is not held but carries the note (in
    the site's language) that goes to the LIS as NTE, and an audit row says so; a result
    measured while in control carries none."""
    site = qc_site(tmp_path, lockout="flag")
    add_lots(site)
    t0 = NOW - timedelta(hours=3)
    controls(site, "48", "48", at=t0)
    clean = site.ingest(specimen="P0")
    controls(site, "55", "48", at=t0 + timedelta(hours=1))  # 1-3s
    assert status(site)["status"] == QcStatus.OUT_OF_CONTROL
    marked = site.ingest(specimen="P1")
    assert site.open_reasons(marked) == []
    with site.engine.connect() as conn:
        comments = dict(conn.execute(select(results.c.id, results.c.comment)).all())
        flagged = conn.execute(
            select(audit.c.entity_id, audit.c.reason).where(audit.c.action == "result.qc_flag")
        ).all()
    assert comments[clean] == ""
    note = comments[marked]
    assert note.startswith("QC-merknad:") and "utenfor kontroll" in note and "1-3s" in note
    assert [(int(e), r) for e, r in flagged] == [(marked, note)]
    queued = run_in_transaction(site.engine, lambda tx: unassigned_queued(tx, 10), NOW)
    (item,) = [q for q in queued if q.result_id == marked]
    oru = build_oru([item], control_id="C1", now=NOW, lis=LisConfig(url="tcp://127.0.0.1:1"))
    assert "|NTE|1|L|QC-merknad:" in oru.replace("\r", "|")


STRIP_QC = """
[[qc]]
test = "GLU"
instrument = "clinitek-1"
levels = ["neg", "pos"]
"""


def test_a_qualitative_control_with_the_wrong_answer_locks_out(tmp_path: Path) -> None:
    """A strip's controls through the ingest path: judged by their expected answers (spelling
    aside), not by Westgard; a wrong answer locks the test out like a 1-3s does."""
    site = make_site(tmp_path)
    site.path.write_text(SITE.format(url=site.config.store.url) + STRIP_QC, encoding="utf-8")
    site.config = load_config(site.path)
    site.base = context_from_config(site.config)

    def job(tx: Tx) -> None:
        for level, expected in (("neg", "neg"), ("pos", "pos")):
            qc_lots.add_lot(
                tx, instrument_id="clinitek-1", test_code="GLU", level=level, lot="S9",
                person="kari", kind="qualitative", expected=expected,
            )  # fmt: skip

    run_in_transaction(site.engine, job, NOW - timedelta(days=2))

    def strip_run(neg: str, pos: str, at: datetime) -> None:
        obs = tuple(
            Observation("clinitek-1", "GLU", value, performed_at=at, operator_id="OLA",
                        is_qc=True, control_lot="S9", control_level=level)
            for level, value in (("neg", neg), ("pos", pos))
        )  # fmt: skip
        message = InboundMessage("clinitek-1", "astm", f"s {next(_raw)}".encode(), at, obs)
        run_in_transaction(
            site.engine, lambda tx: store_message(tx, message, current_context(tx, site.base)), at
        )

    strip_run("Negativ", "POS", NOW - timedelta(hours=3))
    assert verdicts(site) == ["pass", "pass"]
    assert status(site)["status"] == QcStatus.IN_CONTROL
    strip_run("pos", "pos", NOW - timedelta(hours=2))  # the negative control reads positive
    assert verdicts(site)[-2:] == ["fail", "pass"]
    assert status(site)["status"] == QcStatus.OUT_OF_CONTROL
    held = site.ingest("GLU", "neg", specimen="U1", performed_at=NOW - timedelta(hours=1))
    assert "qc_lockout" in site.open_reasons(held)


def test_the_cli_shows_status_documents_and_releases(tmp_path: Path) -> None:
    site = qc_site(tmp_path, passwords=("sven",))
    add_lots(site)
    controls(site, "60", "48", at=NOW - timedelta(hours=2))
    held = site.ingest(specimen="P1")
    runner = CliRunner()
    env = {"TRYGG_PASSWORD": PASSWORD}
    shown = runner.invoke(app, ["qc", "status", "--config", str(site.path), "--json"])
    assert shown.exit_code == 0, shown.output
    (row,) = json.loads(shown.stdout)
    assert (row["instrument"], row["test"], row["status"]) == (
        "afinion-1",
        "HbA1c",
        "out_of_control",
    )
    lid = str(row["lockout"])
    early = runner.invoke(
        app,
        ["qc", "release-held", lid, "--note", "ok", "--user", "sven", "-c", str(site.path)],
        env=env,
    )
    assert early.exit_code == 1 and "still open" in early.output
    controls(site, "48", "48", at=NOW - timedelta(hours=1))
    done = runner.invoke(
        app,
        ["qc", "corrective", lid, "--text", "Kalibrert", "--user", "sven", "-c", str(site.path)],
        env=env,
    )
    assert done.exit_code == 0 and "lifted" in done.output, done.output
    released = runner.invoke(
        app,
        ["qc", "release-held", lid, "--note", "ok", "--user", "sven", "-c", str(site.path)],
        env=env,
    )
    assert released.exit_code == 0, released.output
    assert site.state(held) != "held"


def test_afinion_controls_from_the_driver_profile_are_evaluated(site: Site) -> None:
    """An Afinion 2 control run (ASTM, processing Q) through the real profile: its lot is
    registered on its own, judged once the lot has a target (CRP has no [[qc]] entry: default
    rules, no status)."""
    from drivers.analysers.profiles.afinion2 import PROFILE
    from drivers.protocols.astm.records import parse_message
    from tests.drivers.test_profile_afinion2 import CONTROL

    def ingest(raw: bytes) -> None:
        observations = PROFILE.observations("afinion-1", parse_message(raw))
        message = InboundMessage(
            "afinion-1", "astm", raw, NOW, observations=tuple(observations), processing_id="Q"
        )
        run_in_transaction(
            site.engine, lambda tx: store_message(tx, message, current_context(tx, site.base)), NOW
        )

    ingest(CONTROL)
    with site.engine.connect() as conn:
        lot = qc_lots.find_lot(conn, "afinion-1", "CRP", "C II", "10251234")
    assert lot is not None and lot.target is None and lot.kind == "quantitative"
    assert verdicts(site) == ["no_target"]
    run_in_transaction(
        site.engine,
        lambda tx: qc_lots.set_target(
            tx, lot.id, mean="75", sd="3", source="manual", person="kari"
        ),
        NOW,
    )
    ingest(CONTROL.replace(b"|78|", b"|90|").replace(b"101200", b"111200"))
    assert verdicts(site) == ["no_target", "reject"]  # +5 SD: 1-3s
    with site.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(qc_status)).scalar_one() == 0
