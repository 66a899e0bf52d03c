"""`trygg demo` runs HL7 and ASTM analysers (two on pty serial ports), stops cleanly and loses
nothing; `trygg simulate` runs an ASTM analyser over TCP or a pty."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import Engine, func, select, update
from typer.testing import CliRunner

from drivers.transports import SerialConnector, connector_for
from gateway.app import Gateway
from gateway.cli import app
from gateway.config import load_config
from gateway.demo import DemoOptions, plan_demo, reconcile, run_plan
from gateway.store.engine import make_engine
from gateway.store.signin import Policy, authenticate
from gateway.store.tables import (
    control_lots,
    holds,
    qc_lockouts,
    qc_results,
    raw_messages,
    results,
    signatures,
)
from tests.integration.helpers import free_port, gateway_config, make_config, wait_for

ROOT = Path(__file__).resolve().parents[2]
ASTM = ("afinion-1", "sysmex-1", "clinitek-1")
SERIAL = ("afinion-1", "clinitek-1")
POSIX = hasattr(os, "openpty")
#: wide enough that Rich does not wrap instrument names and device paths
ENV = {**os.environ, "COLUMNS": "200"}


def demo_config(tmp_path: Path, *, busy_astm: bool = False) -> tuple[Path, int]:
    """The bundled demo config on free ports and a private database.

    ``busy_astm``: the ASTM analysers run faster and half their runs are QC, so a run of a few
    seconds has both patient results and controls from each.
    """
    text = (ROOT / "config" / "demo.toml").read_text(encoding="utf-8")
    web = free_port()
    for old in ("2575", "2577", "5102", "5103"):
        text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{free_port()}")
    text = text.replace("127.0.0.1:8470", f"127.0.0.1:{web}")
    text = text.replace("sqlite:///trygg-demo/", f"sqlite:///{tmp_path}/")
    if busy_astm:
        text = re.sub(r"sim_rate_per_s = [0-9.]+", "sim_rate_per_s = 2", text)
        text = re.sub(r"sim_qc_share = [0-9.]+", "sim_qc_share = 0.5", text)
    path = tmp_path / "demo.toml"
    path.write_text(text, encoding="utf-8")
    return path, web


@pytest.mark.skipif(not POSIX, reason="pseudo-terminals need POSIX")
def test_demo_runs_for_n_seconds_and_reconciles(tmp_path: Path) -> None:
    config, _web = demo_config(tmp_path, busy_astm=True)
    summary = tmp_path / "summary.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "demo",
            "--config",
            str(config),
            "--seconds",
            "7",
            "--summary-json",
            str(summary),
            "--no-web",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=ENV,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(summary.read_text(encoding="utf-8"))
    assert set(data) == {
        "received",
        "held",
        "held_total",
        "queued",
        "sent",
        "acknowledged",
        "rejected",
        "quarantined",
        "qc",
        "lost",
        "orders",
        "qc_control",
        "instruments",
    }
    assert data["lost"] == 0
    # the LIS's orders reached the worklist, and the Sysmex's host queries got them back
    orders = data["orders"]
    assert orders["placed"] == 160  # 40 specimens x 4 tests (config/demo.toml)
    assert 0 < orders["answered_with_orders"] <= orders["queries_answered"]
    assert data["received"] > 50 and data["acknowledged"] > 0
    # the demo drains the outbox before it stops; the rest are held, one or more reasons each
    assert data["queued"] == data["sent"] == data["rejected"] == 0
    held_results = data["received"] - data["acknowledged"]
    assert data["held_total"] == held_results
    assert 0 < held_results <= sum(data["held"].values())
    assert "Instrumenter" in done.stdout

    per = data["instruments"]
    assert set(per) == {"bench-1", *ASTM}
    for instrument in ASTM:
        # the analyser was told its messages arrived ("lost" checked each) and the LIS ACKed
        assert per[instrument]["sim_acked"] > 0, instrument
        assert per[instrument]["acknowledged"] > 0, instrument
    # the serial analysers really went over pseudo-terminals, on the gateway's serial transport
    for instrument in SERIAL:
        url = per[instrument]["url"]
        assert url.startswith("serial:///dev/") and url.endswith("?baudrate=9600"), url
        device = url.removeprefix("serial://").partition("?")[0]
        assert device in done.stdout  # the live view says where it is connected
    assert per["sysmex-1"]["url"].startswith("tcp-listen://127.0.0.1:")
    assert "Abbott Afinion 2" in done.stdout and "CLINITEK" in done.stdout

    # QC landed as QC: control rows from the ASTM analysers, and no control among the results
    assert data["qc"] == sum(per[i]["qc"] for i in ASTM) > 0
    # the people rules: config/demo-people.csv imported, [people] enforce = true
    assert {"uncertified_operator", "awaiting_cosign", "awaiting_verification"} <= set(data["held"])
    assert "kompetanse: demo-people.csv importert (7 personer, 11 sertifiseringer)" in done.stdout
    password = re.search(r"engangspassord for denne kjøringen: (\S+)", done.stdout)
    assert password is not None
    # quality control: QC passed first, the Afinion's HbA1c drifted, was locked out, and the
    # supervisor's corrective action and a good run lifted the lockout (gateway/demo/qc.py)
    control = data["qc_control"]
    assert control["judged"].get("accept", 0) > 0 and control["judged"].get("pass", 0) > 0
    assert control["story_phase"] == "lifted", control["story"]
    assert control["lockouts_opened"] >= 1 and control["lockouts_lifted"] >= 1
    assert len(control["story"]) >= 4
    assert re.search(r"sperre \d+ er opphevet", done.stdout) and "Kvalitetskontroll:" in done.stdout
    engine = make_engine(f"sqlite:///{tmp_path}/trygg-demo.sqlite3")
    try:
        assert_qc_story(engine, control["story_lockouts"])
        assert_people_rules(engine)
        attempt = authenticate(
            engine, "bente", password.group(1), now=datetime.now(UTC), policy=Policy()
        )
        assert attempt.ok  # the printed one-time password signs a demo person in
        with engine.connect() as conn:
            lots = conn.execute(
                select(qc_results.c.control_lot).where(qc_results.c.instrument_id.in_(ASTM))
            ).scalars()
            assert all(lots)
            unnamed = conn.execute(
                select(func.count())
                .select_from(results)
                .where(results.c.instrument_id.in_(ASTM), results.c.patient_id == "")
            ).scalar_one()
            assert unnamed == 0
    finally:
        engine.dispose()


def assert_qc_story(engine: Engine, lockout_ids: list[int]) -> None:
    """The simulators' lots are registered with the manufacturer's targets; the story's
    lockouts on the Afinion's HbA1c were lifted after Bente's signed corrective action."""
    with engine.connect() as conn:
        lots = {
            (row.instrument_id, row.test_code, row.level): row
            for row in conn.execute(select(control_lots))
        }
        hba1c = lots[("afinion-1", "HbA1c", "C I")]
        assert (hba1c.lot, hba1c.manufacturer_mean, hba1c.manufacturer_sd) == (
            "10234567",
            "36.0",
            "1.2",
        )
        assert lots[("clinitek-1", "NIT", "Positive")].kind == "qualitative"
        assert ("sysmex-1", "WBC", "high") in lots
        story = conn.execute(select(qc_lockouts).where(qc_lockouts.c.id.in_(lockout_ids))).all()
        assert story and all(
            (row.instrument_id, row.test_code) == ("afinion-1", "HbA1c") for row in story
        )
        assert all(row.lifted_at is not None for row in story)
        assert all(row.corrective_action_by == "bente" for row in story)
        assert all(row.accepted_evaluation_id is not None for row in story)
        signed = conn.execute(
            select(func.count()).select_from(signatures).where(signatures.c.person == "bente")
        ).scalar_one()
        assert signed >= len(story)


#: the demo's operator IDs and who they are (config/demo-people.csv)
DEMO_OPERATORS = {"BH": "bente", "ML": "morten", "KN": "kari", "TS": "tone"}
PEOPLE_HOLDS = {"uncertified_operator", "awaiting_cosign", "awaiting_verification"}


def assert_people_rules(engine: Engine) -> None:
    """Kari's Afinion results (expired) are held uncertified, Tone's (a trainee) wait for a
    co-signature, colour and clarity (read by eye) for a verifier; nobody else's are held for
    a people reason."""
    with engine.connect() as conn:
        reasons: dict[int, set[str]] = {}
        for hold in conn.execute(select(holds.c.result_id, holds.c.reason)):
            reasons.setdefault(hold.result_id, set()).add(hold.reason)
        rows = conn.execute(
            select(
                results.c.id,
                results.c.instrument_id,
                results.c.test_code,
                results.c.operator_id,
                results.c.performed_by,
                results.c.state,
            )
        ).all()
    seen: set[str] = set()
    for row in rows:
        people_holds = reasons.get(row.id, set()) & PEOPLE_HOLDS
        assert row.performed_by == DEMO_OPERATORS[row.operator_id], row
        if row.instrument_id == "afinion-1" and row.operator_id == "KN":
            expected = {"uncertified_operator"}
        elif row.instrument_id == "clinitek-1" and row.operator_id == "TS":
            expected = {"awaiting_cosign"}
        else:
            expected = set()
        if row.instrument_id == "clinitek-1" and row.test_code in ("COL", "CLA"):
            expected.add("awaiting_verification")
        assert people_holds == expected, row
        seen |= people_holds
        if people_holds:
            assert row.state == "held", row
    assert seen == PEOPLE_HOLDS


def test_demo_serves_the_dashboard_while_running(tmp_path: Path) -> None:
    config, web = demo_config(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--config", str(config), "--seconds", "8"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        body = ""
        for _ in range(60):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web}/api/health", timeout=1) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.2)
        assert '"ok"' in body
    finally:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]


@pytest.mark.skipif(not POSIX, reason="pseudo-terminals need POSIX")
def test_serial_instruments_get_a_pty_with_their_line_settings(tmp_path: Path) -> None:
    config = load_config(demo_config(tmp_path)[0])
    plan = plan_demo(config, DemoOptions())
    try:
        urls = {inst.id: inst.url for inst in plan.config.instruments}
        for instrument in SERIAL:
            connector = connector_for(urls[instrument])
            assert isinstance(connector, SerialConnector)
            assert connector.settings.baudrate == 9600
            fd = os.open(connector.settings.device, os.O_RDWR | os.O_NOCTTY)
            try:
                assert os.isatty(fd)
            finally:
                os.close(fd)
        # the sim_* options are the simulators'; the drivers get none of them
        assert all(not inst.options for inst in plan.config.instruments)
        assert {e.instrument_id for e in plan.astm} == set(ASTM)
        assert [s.options.instrument_id for s in plan.hl7] == ["bench-1"]
    finally:
        plan.close()


async def test_without_ptys_serial_instruments_run_over_tcp_and_losses_are_counted(
    tmp_path: Path,
) -> None:
    """As on Windows: the serial analysers are simulated over TCP and the screen says so; and
    reconcile really counts a result or a control the gateway no longer holds."""
    path, _web = demo_config(tmp_path, busy_astm=True)
    plan = plan_demo(load_config(path), DemoOptions(pty=False))
    out = io.StringIO()
    try:
        urls = {inst.id: inst.url for inst in plan.config.instruments}
        assert all(urls[i].startswith("tcp-listen://127.0.0.1:") for i in SERIAL)
        data = await run_plan(
            plan, DemoOptions(seconds=3, web=False, pty=False), Console(file=out, width=200)
        )
    finally:
        plan.close()
    text = out.getvalue()
    assert "afinion-1: ingen pseudoterminal" in text and "clinitek-1: ingen pseudoterminal" in text
    assert data["lost"] == 0
    assert all(data["instruments"][i]["sim_acked"] > 0 for i in SERIAL)

    # the rows no longer say what the analysers sent (rows cannot simply go: holds and the
    # outbox refer to them); each counts as one result lost
    engine = make_engine(plan.config.store.url)
    try:
        with engine.begin() as conn:
            victim = conn.execute(
                select(results.c.id)
                .where(results.c.instrument_id == "afinion-1")
                .order_by(results.c.id)
                .limit(1)
            ).scalar_one()
            conn.execute(update(results).where(results.c.id == victim).values(value="-1"))
        assert reconcile(engine, plan.hl7, plan.astm) == 1
        with engine.begin() as conn:
            # a control whose (instrument, test, value, lot) no other control repeats: with
            # stable lots, two runs of a level often print the same value
            key = (
                qc_results.c.instrument_id,
                qc_results.c.test_code,
                qc_results.c.value,
                qc_results.c.control_lot,
            )
            control = conn.execute(
                select(func.min(qc_results.c.id))
                .where(qc_results.c.instrument_id.in_(ASTM))
                .group_by(*key)
                .having(func.count() == 1)
                .order_by(func.min(qc_results.c.id))
                .limit(1)
            ).scalar_one()
            conn.execute(update(qc_results).where(qc_results.c.id == control).values(value="-1"))
        assert reconcile(engine, plan.hl7, plan.astm) == 2
    finally:
        engine.dispose()


async def test_simulate_runs_an_astm_analyser_against_a_gateway(
    sqlite_url: str, tmp_path: Path
) -> None:
    port = free_port()
    data = gateway_config(sqlite_url, [], lis_port=None)
    data["instruments"] = [
        {"id": "af-1", "driver": "astm_afinion2", "url": f"tcp-listen://127.0.0.1:{port}"}
    ]
    gateway = Gateway(make_config(data))
    task = asyncio.create_task(gateway.run())
    try:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "gateway.cli", "simulate", "--protocol", "astm"),
            *("--profile", "astm_afinion2", "--connect", f"127.0.0.1:{port}"),
            *("--count", "3", "--rate", "0", "--seed", "4", "--qc-share", "0.5"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=tmp_path,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert "3 sample(s) acknowledged by the gateway" in out.decode()

        def stored() -> int:
            with gateway.engine.connect() as conn:
                query = select(func.count()).select_from(raw_messages)
                return int(
                    conn.execute(query.where(raw_messages.c.instrument_id == "af-1")).scalar_one()
                )

        await wait_for(lambda: stored() == 3, 10, "the three messages to be stored")
        with gateway.engine.connect() as conn:
            n_results = conn.execute(select(func.count()).select_from(results)).scalar_one()
            n_qc = conn.execute(select(func.count()).select_from(qc_results)).scalar_one()
        assert n_results + n_qc > 0
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gateway.engine.dispose()


@pytest.mark.skipif(not POSIX, reason="pseudo-terminals need POSIX")
def test_simulate_serial_pty_prints_a_url_the_serial_transport_opens(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "gateway.cli", "simulate", "--protocol", "astm"),
            *("--profile", "astm_clinitek_status", "--serial-pty", "--baudrate", "19200"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        heading, url = proc.stdout.readline(), proc.stdout.readline().strip()
        assert "CLINITEK" in heading
        connector = connector_for(url)
        assert isinstance(connector, SerialConnector)
        assert connector.settings.baudrate == 19200

        async def open_and_close() -> None:
            stream = await connector.connect()  # the gateway's own serial transport
            await stream.aclose()
            await connector.aclose()

        asyncio.run(open_and_close())
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-2000:]
    assert "acknowledged by the gateway" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--protocol", "astm"],  # neither --connect nor --serial-pty
        ["--protocol", "astm", "--serial-pty", "--connect", "127.0.0.1:1"],  # both
        ["--protocol", "astm", "--profile", "no_such_analyser", "--connect", "127.0.0.1:1"],
        ["--protocol", "poct1a", "--connect", "127.0.0.1:1"],
        [],  # HL7 needs --connect
    ],
)
def test_simulate_refuses_incomplete_arguments(args: list[str]) -> None:
    result = CliRunner().invoke(app, ["simulate", *args])
    assert result.exit_code == 2
