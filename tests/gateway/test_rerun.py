"""Ingest and the people rules: an uncertified operator's result is reported (a deviation to
the equipment owner, an MQTT alert), and a certified operator's re-run replaces it."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select

from drivers.model import InboundMessage, Observation
from gateway.ingest import store_message
from gateway.rule_context import current_context
from gateway.store.tables import audit, deviations, holds, signatures
from gateway.store.writer import Event, Tx, run_in_transaction
from tests.gateway.hold_site import NOW, VALID, Site, make_site


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    made = make_site(tmp_path)
    yield made
    made.engine.dispose()


def ingest_events(site: Site, operator: str, specimen: str, minutes: int) -> list[Event]:
    """Ingest one HbA1c result and return the events its transaction would publish."""
    obs = Observation(
        "afinion-1",
        "HbA1c",
        "51",
        performed_at=NOW - timedelta(minutes=minutes),
        operator_id=operator,
        specimen_id=specimen,
        patient_id=VALID,
    )
    raw = f"{operator} {specimen} {minutes}".encode()
    message = InboundMessage("afinion-1", "astm", raw, NOW, observations=(obs,))

    def job(tx: Tx) -> list[Event]:
        store_message(tx, message, current_context(tx, site.base))
        return list(tx.events)

    return run_in_transaction(site.engine, job, NOW)


def test_an_uncertified_result_raises_a_deviation_and_an_alert(site: Site) -> None:
    events = ingest_events(site, "ULF", "S1", 20)
    alerts = [payload for kind, _, payload in events if kind == "alert"]
    assert alerts == [
        {
            "kind": "uncertified_operator",
            "result_id": 1,
            "operator": "ULF",
            "task": "afinion-1:HbA1c",
            "problem": "not_certified",
            "deviation": 1,
        }
    ]
    assert VALID not in json.dumps([payload for _, _, payload in events])  # no patient data
    with site.engine.connect() as conn:
        (deviation,) = conn.execute(select(deviations)).all()
    assert (deviation.kind, deviation.responsible_function, deviation.result_id) == (
        "uncertified_operator",
        "Utstyrsansvarlig",
        1,
    )
    assert "ULF" in deviation.summary and VALID not in deviation.summary + deviation.detail
    certified = ingest_events(site, "OLA", "S2", 20)
    assert [kind for kind, _, _ in certified if kind == "alert"] == []


def test_a_certified_rerun_replaces_the_held_result(site: Site) -> None:
    first = site.ingest(operator="ULF", specimen="S7", performed_at=NOW - timedelta(minutes=30))
    other_specimen = site.ingest(operator="ULF", specimen="S8")
    trainee = site.ingest(operator="TINA", specimen="S7", performed_at=NOW - timedelta(minutes=20))
    assert site.state(first) == "held"  # a trainee's re-run is not a certified one
    assert site.open_reasons(trainee) == ["awaiting_cosign"]
    rerun = site.ingest(operator="OLA", specimen="S7", performed_at=NOW - timedelta(minutes=5))
    assert site.state(rerun) == "queued"
    assert site.state(first) == "discarded"
    assert site.state(other_specimen) == "held"  # another sample: not a re-run of it
    assert site.state(trainee) == "held"  # not held for an uncertified operator
    with site.engine.connect() as conn:
        (hold,) = conn.execute(select(holds).where(holds.c.result_id == first)).all()
        (signature,) = conn.execute(select(signatures)).all()
        moved = conn.execute(
            select(audit.c.actor, audit.c.reason).where(
                audit.c.action == "result.discarded", audit.c.entity_id == str(first)
            )
        ).one()
    why = f"replaced by re-run #{rerun}"
    assert (hold.released_by, hold.release_note, hold.released_at) == ("system", why, NOW)
    assert (signature.person, signature.meaning, signature.result_id, signature.comment) == (
        "system",
        "supersede",
        first,
        why,
    )
    assert json.loads(signature.detail)["replaced_by"] == rerun
    assert tuple(moved) == ("system", why)


def test_the_same_transaction_sees_its_own_uncertified_hold(site: Site) -> None:
    """An uncertified result and its certified re-run in one writer batch."""
    late = Observation(
        "afinion-1", "HbA1c", "50", performed_at=NOW - timedelta(minutes=3), operator_id="OLA"
    )
    early = Observation(
        "afinion-1", "HbA1c", "49", performed_at=NOW - timedelta(minutes=9), operator_id="ULF"
    )

    def both(tx: Tx) -> None:
        context = current_context(tx, site.base)
        for n, obs in enumerate((early, late)):
            obs = dataclasses.replace(obs, specimen_id="B1", patient_id=VALID)
            message = InboundMessage("afinion-1", "astm", b"batch %d" % n, NOW, observations=(obs,))
            store_message(tx, message, context)

    run_in_transaction(site.engine, both, NOW)
    assert (site.state(1), site.state(2)) == ("discarded", "queued")


@pytest.fixture
def statements(site: Site) -> Iterator[list[str]]:
    """Every SQL statement SQLite runs from now on (also those on the driver's own cursor)."""
    seen: list[str] = []

    @event.listens_for(site.engine, "connect")
    def trace(dbapi: sqlite3.Connection, _record: object) -> None:
        dbapi.set_trace_callback(seen.append)

    site.engine.dispose()  # new connections from here on carry the trace
    yield seen
    event.remove(site.engine, "connect", trace)


def test_ingest_looks_for_a_predecessor_only_when_an_uncertified_hold_is_open(
    site: Site, statements: list[str]
) -> None:
    for n in range(3):
        site.ingest(operator="OLA", specimen=f"C{n}")
    probes = [s for s in statements if "reason = 'uncertified_operator'" in s]
    assert len(probes) == 3 and all("LIMIT 1" in s for s in probes)  # one per transaction
    site.ingest(operator="ULF", specimen="U1")
    statements.clear()
    site.ingest(operator="OLA", specimen="C9")
    lookups = [s for s in statements if "JOIN holds" in s and "r.specimen_id" in s]
    assert len(lookups) == 1
