"""The hold actions on PostgreSQL: the same flows, the partial index of open holds, the session
times compared there, and two people acting on one result at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.holds import ActionOutcome, Done, Refusal, correct, cosign, verify
from gateway.rules import RuleContext
from gateway.store.audit import verify as verify_audit
from gateway.store.writer import Tx, run_in_transaction
from tests.gateway.hold_site import INVALID, NOW, VALID, Site, make_site

pytestmark = pytest.mark.postgres


@pytest.fixture
def site(tmp_path: Path, postgres_url: str) -> Iterator[Site]:
    made = make_site(tmp_path, postgres_url)
    yield made
    made.engine.dispose()


def test_the_actions_on_postgresql(site: Site) -> None:
    with site.engine.connect() as conn:
        index = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_holds_open_reason'")
        ).scalar_one()
    assert "WHERE (released_at IS NULL)" in index
    wrong = site.ingest(patient=INVALID, specimen="P1")
    fixed = site.act(
        lambda tx, c: correct(
            tx, wrong, "vera", field="patient_id", new_value=VALID, reason="label", context=c
        )
    )
    assert fixed.code == Done.QUEUED
    worked = NOW - timedelta(minutes=10)
    trainee = site.ingest(operator="TINA", specimen="P2")
    site.session("sara", worked - timedelta(minutes=5), worked + timedelta(minutes=1))
    signed = site.act(lambda tx, c: cosign(tx, trainee, "sara", context=c))
    assert signed.code == Done.QUEUED and signed.notes == ("session",)
    uncertified = site.ingest(operator="ULF", specimen="P3", performed_at=NOW - timedelta(hours=1))
    rerun = site.ingest(operator="OLA", specimen="P3")
    assert (site.state(uncertified), site.state(rerun)) == ("discarded", "queued")
    with site.engine.connect() as conn:
        assert verify_audit(conn).ok


def test_two_verifiers_at_once_the_second_is_refused_cleanly(site: Site) -> None:
    strip = site.ingest("GLU", "1+", operator="OLA", specimen="U1")
    first_in = threading.Event()
    finish = threading.Event()
    outcomes: dict[str, ActionOutcome] = {}

    def slow_verify(tx: Tx) -> ActionOutcome:
        outcome = verify(tx, strip, "vera", context=site.base)
        first_in.set()
        assert finish.wait(10)  # hold the transaction (and the row lock) open a while
        return outcome

    def first() -> None:
        outcomes["vera"] = run_in_transaction(site.engine, slow_verify, NOW)

    def second(tx: Tx, context: RuleContext) -> ActionOutcome:
        return verify(tx, strip, "viktor", context=context)

    worker = threading.Thread(target=first)
    worker.start()
    assert first_in.wait(10)
    racer = threading.Thread(target=lambda: outcomes.__setitem__("viktor", site.act(second)))
    racer.start()
    racer.join(0.5)
    assert racer.is_alive()  # waiting for vera's lock on the result
    finish.set()
    worker.join(10)
    racer.join(10)
    assert outcomes["vera"].code == Done.QUEUED
    assert outcomes["viktor"].refused and outcomes["viktor"].code == Refusal.NOT_HELD
