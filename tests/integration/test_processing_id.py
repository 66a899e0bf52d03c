"""Test and debug messages (HL7 MSH-11, ASTM H.12 not P) over real sockets on 127.0.0.1.

An analyser sends the same kind of result marked T, D and P; the gateway acknowledges all
three as received, forwards only the production one to the simulated LIS, and keeps the
others as test data with their reason (or, with ``test_messages = "quarantine"``, in
quarantine with their raw bytes). Both protocols follow the one rule.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from drivers.mllp import MllpClient
from drivers.protocols.astm.records import encode_message
from gateway.app import Gateway
from gateway.cli import app as cli
from gateway.config import Config
from gateway.people.roles import Role
from gateway.store.audit import verify
from gateway.store.people import upsert_person
from gateway.store.queries import list_results, summary
from gateway.store.signin import set_password
from gateway.store.tables import quarantine, raw_messages, results
from gateway.store.writer import Tx, run_in_transaction
from simulators.astm_models.astm_generic import MODEL as GENERIC_MODEL
from simulators.lis import LisSimOptions, LisSimulator
from simulators.national_id import make_fnr
from tests.drivers.test_astm_host import AstmInstrument
from tests.integration.helpers import (
    connect,
    free_port,
    gateway_config,
    make_config,
    running,
    wait_for,
)

pytestmark = pytest.mark.timeout(90)

RNG = random.Random(11)
PATIENT = make_fnr(RNG)


def oru(control_id: str, processing_id: str, specimen: str) -> bytes:
    return (
        "MSH|^~\\&|BENCH|SN1|TRYGG|LAB|20261121093000+0000||ORU^R01^ORU_R01|"
        f"{control_id}|{processing_id}|2.5.1\r"
        f"PID|1||{PATIENT}^^^^NNNOR\r"
        f"OBR|1||{specimen}|CRP^CRP^L|||20261121093000+0000\r"
        "OBX|1|NM|CRP^CRP^L||17|mg/L|||||F|||20261121093000+0000\r"
    ).encode()


def lis_text(record: Path) -> str:
    if not record.exists():
        return ""
    return "\n".join(json.loads(line)["message"] for line in record.read_text().splitlines())


def site_toml(tmp_path: Path, store_url: str, driver: str, port: int) -> Path:
    """The same site as a TOML file, for the CLI."""
    path = tmp_path / "site.toml"
    path.write_text(
        f'[site]\nname = "test-site"\n[store]\nurl = "{store_url}"\n'
        f'[[instruments]]\nid = "inst-0"\ndriver = "{driver}"\n'
        f'url = "tcp-listen://127.0.0.1:{port}"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def site(sqlite_url: str, make_gateway: Callable[[Config], Gateway]) -> Any:
    def make(driver: str, policy: str | None) -> tuple[Gateway, int, int]:
        lis_port, port = free_port(), free_port()
        data = gateway_config(sqlite_url, [port], lis_port=lis_port, batch_size=1)
        data["instruments"][0]["driver"] = driver
        if policy is not None:
            data["instruments"][0]["test_messages"] = policy
        return make_gateway(make_config(data)), port, lis_port

    return make


def settled(gateway: Gateway, specimen: str) -> bool:
    """The production specimen's results are at the LIS and nothing else is on its way."""
    with gateway.engine.connect() as conn:
        by_state = summary(conn).by_state
        states = set(
            conn.execute(select(results.c.state).where(results.c.specimen_id == specimen)).scalars()
        )
    return states == {"acknowledged"} and not by_state.get("queued") and not by_state.get("sent")


# --- HL7 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", [None, "keep"])
async def test_hl7_test_and_debug_messages_get_aa_and_are_kept_not_forwarded(
    site: Any, tmp_path: Path, sqlite_url: str, policy: str | None
) -> None:
    gateway, port, lis_port = site("hl7_mllp", policy)
    record = tmp_path / "lis.jsonl"
    sent = {"T": oru("C-T", "T", "SPEC-T"), "D": oru("C-D", "D", "SPEC-D")}
    sent["P"] = oru("C-P", "P", "SPEC-P")
    async with LisSimulator(LisSimOptions("127.0.0.1", lis_port, record=record)), running(gateway):
        stream = await connect(port)
        client = MllpClient(stream, ack_timeout_s=10)
        acks = {pid: await client.exchange(payload) for pid, payload in sent.items()}
        await stream.aclose()
        await wait_for(lambda: settled(gateway, "SPEC-P"), 30, "the P result at the LIS")
        await asyncio.sleep(0.5)  # anything else the forwarder would send shows up now
    assert {pid: ack.code for pid, ack in acks.items()} == {"T": "AA", "D": "AA", "P": "AA"}
    text = lis_text(record)
    assert "SPEC-P" in text and "SPEC-T" not in text and "SPEC-D" not in text
    assert "|T|2.5.1" not in text and "|D|2.5.1" not in text
    with gateway.engine.connect() as conn:
        assert verify(conn).ok
        states = dict(conn.execute(select(results.c.specimen_id, results.c.state)).all())
        assert states == {"SPEC-T": "test", "SPEC-D": "test", "SPEC-P": "acknowledged"}
        assert conn.execute(select(quarantine.c.id)).first() is None
        listed = {r["specimen"]: r for r in list_results(conn)}
    for pid in ("T", "D"):
        (hold,) = listed[f"SPEC-{pid}"]["holds"]
        assert hold["reason"] == "test_message" and not hold["released"]
        assert hold["detail"] == f"Test message (MSH-11 = {pid}): not sent to the LIS."
        assert hold["detail_nb"] == f"Testmelding (MSH-11 = {pid}): ikke sendt til LIS."
    assert listed["SPEC-P"]["holds"] == []

    # the CLI lists them with the reason, and will not release one to the LIS
    config = site_toml(tmp_path, sqlite_url, "hl7_mllp", port)
    runner = CliRunner()
    shown = runner.invoke(cli, ["results", "list", "--config", str(config)], env={"COLUMNS": "400"})
    assert shown.exit_code == 0, shown.output
    assert "Test message (MSH-11 = T): not sent to the LIS." in shown.output
    assert "Test message (MSH-11 = D): not sent to the LIS." in shown.output
    test_id = listed["SPEC-T"]["id"]

    def signer(tx: Tx) -> None:  # a quality manager, who may release what a release ends
        upsert_person(tx, "kari", name="Kari", roles=[Role.QUALITY_MANAGER], actor="test")
        set_password(tx, "kari", "correct horse battery staple", actor="test")

    run_in_transaction(gateway.engine, signer)
    released = runner.invoke(
        cli,
        [
            "results",
            "release",
            str(test_id),
            "--config",
            str(config),
            "--by",
            "kari",
            "--note",
            "ok",
        ],
        env={"TRYGG_PASSWORD": "correct horse battery staple"},
    )
    assert released.exit_code == 1
    assert "test data" in released.output


async def test_hl7_test_messages_quarantined_with_their_bytes_when_configured(
    site: Any, tmp_path: Path
) -> None:
    gateway, port, lis_port = site("hl7_mllp", "quarantine")
    record = tmp_path / "lis.jsonl"
    sent = {"T": oru("C-T", "T", "SPEC-T"), "D": oru("C-D", "D", "SPEC-D")}
    sent["P"] = oru("C-P", "P", "SPEC-P")
    async with LisSimulator(LisSimOptions("127.0.0.1", lis_port, record=record)), running(gateway):
        stream = await connect(port)
        client = MllpClient(stream, ack_timeout_s=10)
        acks = {pid: await client.exchange(payload) for pid, payload in sent.items()}
        await stream.aclose()
        await wait_for(lambda: settled(gateway, "SPEC-P"), 30, "the P result at the LIS")
        await asyncio.sleep(0.5)
    assert {pid: ack.code for pid, ack in acks.items()} == {"T": "AA", "D": "AA", "P": "AA"}
    text = lis_text(record)
    assert "SPEC-P" in text and "SPEC-T" not in text and "SPEC-D" not in text
    with gateway.engine.connect() as conn:
        assert verify(conn).ok
        assert set(conn.execute(select(results.c.specimen_id)).scalars()) == {"SPEC-P"}
        kept = conn.execute(
            select(raw_messages.c.raw, quarantine.c.reason, quarantine.c.field, quarantine.c.params)
            .join(raw_messages, raw_messages.c.id == quarantine.c.raw_message_id)
            .order_by(quarantine.c.id)
        ).all()
    assert [bytes(k.raw) for k in kept] == [sent["T"], sent["D"]]
    assert [(k.reason, k.field) for k in kept] == [("test_message", "MSH-11")] * 2
    assert [json.loads(k.params)["processing_id"] for k in kept] == ["T", "D"]


# --- ASTM -----------------------------------------------------------------------------------


def astm_message(processing_id: str) -> tuple[bytes, str]:
    """A generic LIS2-A2 patient message with H.12 = ``processing_id``; its specimen ID."""
    sample = GENERIC_MODEL.sample(
        RNG, operator_id="op1", qc=False, patient_id=PATIENT, now=datetime.now(UTC)
    )
    raw = encode_message(GENERIC_MODEL.message(sample))
    assert raw.count(b"|P|LIS2-A2|") == 1
    return raw.replace(b"|P|LIS2-A2|", f"|{processing_id}|LIS2-A2|".encode()), sample.specimen_id


@pytest.mark.parametrize("policy", [None, "quarantine"])
async def test_astm_h12_t_is_acknowledged_kept_and_never_forwarded(
    site: Any, tmp_path: Path, policy: str | None
) -> None:
    gateway, port, lis_port = site("astm_generic", policy)
    record = tmp_path / "lis.jsonl"
    test_raw, test_specimen = astm_message("T")
    prod_raw, prod_specimen = astm_message("P")
    async with LisSimulator(LisSimOptions("127.0.0.1", lis_port, record=record)), running(gateway):
        stream = await connect(port)
        instrument = AstmInstrument(stream, max_text=100)
        await instrument.send(test_raw, prod_raw)  # each ACKed only once stored
        await stream.aclose()
        await wait_for(lambda: settled(gateway, prod_specimen), 30, "the P results at the LIS")
        await asyncio.sleep(0.5)
    text = lis_text(record)
    assert prod_specimen in text and test_specimen not in text
    with gateway.engine.connect() as conn:
        assert verify(conn).ok
        states = set(
            conn.execute(
                select(results.c.state).where(results.c.specimen_id == test_specimen)
            ).scalars()
        )
        kept = conn.execute(
            select(raw_messages.c.raw, quarantine.c.reason, quarantine.c.field).join(
                raw_messages, raw_messages.c.id == quarantine.c.raw_message_id
            )
        ).all()
        listed = [r for r in list_results(conn) if r["specimen"] == test_specimen]
    if policy is None:  # the default: keep
        assert states == {"test"} and kept == []
        assert {h["detail"] for r in listed for h in r["holds"]} == {
            "Test message (H.12 = T): not sent to the LIS."
        }
    else:
        assert states == set()
        assert [(bytes(k.raw), k.reason, k.field) for k in kept] == [
            (test_raw, "test_message", "H.12")
        ]
