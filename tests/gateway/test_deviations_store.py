"""The deviation register in the store: reporting by hand, the edits and moves with their
history and audit rows, the signed close, filters, and the quarantine deviation (one per
instrument and day while not closed), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from drivers.model import InboundMessage
from gateway.deviations.workflow import DevState, Refusal
from gateway.ingest import store_message
from gateway.people.roles import Role
from gateway.rules import RuleContext
from gateway.store import deviations as register
from gateway.store import people
from gateway.store.deviations import Filters, Outcome
from gateway.store.tables import audit, deviation_events, deviations, signatures
from gateway.store.writer import Tx, run_in_transaction

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # 09:00 in Oslo
STAFF = {
    "ola": [Role.OPERATOR],
    "vera": [Role.VERIFIER],
    "siri": [Role.SUPERVISOR],
    "kari": [Role.QUALITY_MANAGER],
    "adam": [Role.ADMIN],
}


@pytest.fixture
def store(engine: Engine) -> Engine:
    def job(tx: Tx) -> None:
        for person, roles in STAFF.items():
            people.upsert_person(tx, person, name=person.title(), roles=roles, actor="test")

    run_in_transaction(engine, job, T0)
    return engine


def run(engine: Engine, job: Any, at: datetime = T0) -> Outcome:
    outcome = run_in_transaction(engine, job, at)
    assert isinstance(outcome, Outcome)
    return outcome


def report(engine: Engine, person: str = "ola", **fields: Any) -> Outcome:
    values = {"category": "equipment", "summary": "Afinion viste feilkode 105", **fields}
    return run(engine, lambda tx: register.report(tx, person, **values))


def events(engine: Engine, deviation_id: int) -> list[tuple[str, str, str, str]]:
    with engine.connect() as conn:
        return [
            (e["person"], e["action"], e["from_value"], e["to_value"])
            for e in register.history(conn, deviation_id)
        ]


def row(engine: Engine, deviation_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        found = register.get_deviation(conn, deviation_id)
    assert found is not None
    return found


def test_an_operator_reports_with_an_immediate_action(store: Engine) -> None:
    done = report(
        store,
        detail="Kassett satt inn feil vei",
        immediate_action="Ny kassett, prøven kjørt på nytt",
        instrument_id="afinion-1",
        result_id=None,
    )
    assert done.done and done.deviation_id
    d = row(store, done.deviation_id)
    assert (d["kind"], d["category"], d["responsible"], d["state"]) == (
        "manual",
        "equipment",
        "Utstyrsansvarlig",
        "open",
    )
    assert d["immediate_action"] == "Ny kassett, prøven kjørt på nytt"
    assert (d["created_by"], d["instrument"]) == ("ola", "afinion-1")
    assert events(store, done.deviation_id) == [
        ("ola", "created", "", "open"),
        ("ola", "immediate_action", "", "Ny kassett, prøven kjørt på nytt"),
    ]
    with store.connect() as conn:
        actions = set(
            conn.execute(
                select(audit.c.action).where(audit.c.entity_id == str(done.deviation_id))
            ).scalars()
        )
    assert {"deviation.recorded", "deviation.immediate_action"} <= actions
    assert "#" in done.message("nb") and "Takk" in done.message("nb")


def test_reporting_refusals(store: Engine) -> None:
    assert report(store, "adam").refusal is Refusal.NO_ROLE
    assert report(store, "nobody").refusal is Refusal.NO_ROLE
    assert report(store, category="weather").refusal is Refusal.UNKNOWN_CATEGORY
    assert report(store, summary="   ").refusal is Refusal.EMPTY
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(deviations)).scalar_one() == 0


def test_worked_through_and_closed_with_a_signature(store: Engine) -> None:
    deviation_id = report(store).deviation_id
    assert deviation_id
    later = T0 + timedelta(hours=2)
    # the operator may add an immediate action and a comment, not the cause
    assert run(
        store, lambda tx: register.set_immediate_action(tx, deviation_id, "ola", "Stoppet bruk")
    ).done
    refused = run(store, lambda tx: register.record_handling(tx, deviation_id, "ola", cause="x"))
    assert refused.refusal is Refusal.NO_ROLE
    assert run(store, lambda tx: register.add_comment(tx, deviation_id, "vera", "Sett før")).done
    # closing before it is handled is refused
    start = run(store, lambda tx: register.move(tx, deviation_id, "siri", DevState.IN_PROGRESS))
    assert start.done and start.what == "start"
    not_yet = run(store, lambda tx: register.close_signed(tx, deviation_id, "siri"))
    assert not_yet.refusal is Refusal.NEEDS_CAUSE
    handled = run(
        store,
        lambda tx: register.record_handling(
            tx,
            deviation_id,
            "siri",
            cause="Kassetten var lagret i kjøleskap",
            corrective_action="Rutine for romtemperering oppdatert",
        ),
        later,
    )
    assert handled.done
    closed = run(
        store, lambda tx: register.close_signed(tx, deviation_id, "siri", note="OK"), later
    )
    assert closed.done and closed.signature_id
    d = row(store, deviation_id)
    assert d["state"] == "closed"
    assert (d["closed_by"], datetime.fromisoformat(d["closed_at"])) == ("siri", later)
    assert [e[1:] for e in events(store, deviation_id)] == [
        ("created", "", "open"),
        ("immediate_action", "", "Stoppet bruk"),
        ("comment", "", "Sett før"),
        ("status", "open", "in_progress"),
        ("cause", "", "Kassetten var lagret i kjøleskap"),
        ("corrective_action", "", "Rutine for romtemperering oppdatert"),
        ("status", "in_progress", "closed"),
        ("comment", "", "OK"),
    ]
    with store.connect() as conn:
        (signature,) = conn.execute(select(signatures)).all()
    assert (signature.person, signature.meaning, signature.at) == ("siri", "deviation_close", later)
    assert json.loads(signature.detail)["deviation"] == deviation_id
    # closed: only comments, and reopening by the quality manager with a reason
    after = run(store, lambda tx: register.set_immediate_action(tx, deviation_id, "ola", "Mer"))
    assert after.refusal is Refusal.CLOSED
    assert run(store, lambda tx: register.add_comment(tx, deviation_id, "ola", "Takk")).done
    by_sup = run(
        store, lambda tx: register.move(tx, deviation_id, "siri", DevState.IN_PROGRESS, reason="x")
    )
    assert by_sup.refusal is Refusal.NO_ROLE
    no_reason = run(store, lambda tx: register.move(tx, deviation_id, "kari", DevState.IN_PROGRESS))
    assert no_reason.refusal is Refusal.NEEDS_REASON
    reopened = run(
        store,
        lambda tx: register.move(
            tx, deviation_id, "kari", DevState.IN_PROGRESS, reason="Skjedde igjen i dag"
        ),
    )
    assert reopened.done and reopened.what == "reopen"
    d = row(store, deviation_id)
    assert (d["state"], d["closed_by"], d["closed_at"]) == ("in_progress", "", "")


def test_a_cause_on_an_open_deviation_takes_it_up(store: Engine) -> None:
    deviation_id = report(store).deviation_id
    assert deviation_id
    done = run(
        store, lambda tx: register.record_handling(tx, deviation_id, "kari", cause="Lot byttet")
    )
    assert done.done
    assert row(store, deviation_id)["state"] == "in_progress"
    again = run(
        store, lambda tx: register.record_handling(tx, deviation_id, "kari", cause="Lot byttet")
    )
    assert again.refusal is Refusal.UNCHANGED


def test_no_corrective_action_needed_is_a_decision_with_a_reason(store: Engine) -> None:
    deviation_id = report(store).deviation_id
    assert deviation_id
    run(
        store,
        lambda tx: register.record_handling(
            tx,
            deviation_id,
            "siri",
            cause="Engangshendelse: strømbrudd",
            corrective_action="Nødstrøm finnes allerede; ingenting å endre",
            corrective_action_needed=False,
            category="hms",
        ),
    )
    d = row(store, deviation_id)
    assert d["corrective_action_needed"] is False
    assert (d["category"], d["responsible"]) == ("hms", "HMS-ansvarlig")
    actions = [e[1] for e in events(store, deviation_id)]
    assert "no_corrective_action" in actions and "category" in actions
    assert run(store, lambda tx: register.close_signed(tx, deviation_id, "siri")).done


def test_closing_without_a_signature_is_refused(store: Engine) -> None:
    deviation_id = report(store).deviation_id
    assert deviation_id
    run(
        store,
        lambda tx: register.record_handling(
            tx, deviation_id, "siri", cause="a", corrective_action="b"
        ),
    )
    unsigned = run(store, lambda tx: register.move(tx, deviation_id, "siri", DevState.CLOSED))
    assert unsigned.refusal is Refusal.NOT_SIGNED
    missing = run(store, lambda tx: register.add_comment(tx, 999, "ola", "x"))
    assert missing.refusal is Refusal.NO_SUCH_DEVIATION


def test_list_filters_and_counts(store: Engine) -> None:
    first = report(store, instrument_id="afinion-1").deviation_id
    report(store, category="it", summary="LIS nede")
    run(
        store,
        lambda tx: register.report(tx, "vera", category="clinical", summary="Feil pasient"),
        T0 + timedelta(days=40),
    )
    assert first
    run(store, lambda tx: register.move(tx, first, "siri", DevState.IN_PROGRESS))
    with store.connect() as conn:
        everything = register.list_deviations(conn)
        assert [d["summary"] for d in everything] == [
            "Feil pasient",
            "LIS nede",
            "Afinion viste feilkode 105",
        ]
        assert [d["id"] for d in register.list_deviations(conn, Filters(state="in_progress"))] == [
            first
        ]
        assert len(register.list_deviations(conn, Filters(category="it"))) == 1
        assert len(register.list_deviations(conn, Filters(instrument="afinion-1"))) == 1
        march = Filters(since=T0 - timedelta(days=1), until=T0 + timedelta(days=30))
        assert len(register.list_deviations(conn, march)) == 2
        assert register.count_by_state(conn) == {"open": 2, "in_progress": 1, "closed": 0}
        # the state filter does not narrow the counts a person picks a state from
        assert register.count_by_state(conn, Filters(state="open")) == {
            "open": 2,
            "in_progress": 1,
            "closed": 0,
        }
        assert register.instruments(conn) == ["afinion-1"]
        assert [r["summary"] for r in register.export_rows(conn, march.since, march.until)] == [
            "Afinion viste feilkode 105",
            "LIS nede",
        ]


def garbled(instrument: str, at: datetime, n: int) -> InboundMessage:
    return InboundMessage(
        instrument,
        "hl7",
        f"MSH|^~\\&|broken {n}".encode(),
        at,
        error="PID-3: cannot read 01010012356^^^X",
        error_field="PID-3",
    )


def quarantine(engine: Engine, instrument: str, at: datetime, n: int) -> None:
    context = RuleContext()
    run_in_transaction(
        engine, lambda tx: store_message(tx, garbled(instrument, at, n), context), at
    )


def test_quarantine_opens_one_deviation_per_instrument_and_day(store: Engine) -> None:
    for n in range(3):
        quarantine(store, "sysmex-1", T0 + timedelta(minutes=n), n)
    quarantine(store, "afinion-1", T0, 10)
    # 23:30 UTC is already the next day in Oslo
    quarantine(store, "sysmex-1", datetime(2026, 3, 2, 23, 30, tzinfo=UTC), 20)
    with store.connect() as conn:
        rows = conn.execute(
            select(deviations.c.id, deviations.c.instrument_id, deviations.c.category)
            .where(deviations.c.kind == "quarantine")
            .order_by(deviations.c.id)
        ).all()
    assert [(r.instrument_id, r.category) for r in rows] == [
        ("sysmex-1", "equipment"),
        ("afinion-1", "equipment"),
        ("sysmex-1", "equipment"),
    ]
    first = rows[0].id
    history = events(store, first)
    assert [e[1] for e in history] == ["created", "comment", "comment"]
    assert all("01010012356" not in e[3] for e in history)  # reason codes, not the bytes
    d = row(store, first)
    assert d["responsible"] == "Utstyrsansvarlig" and "sysmex-1" in d["summary"]
    # once closed, the next quarantined message that day opens a new one
    run(
        store,
        lambda tx: register.record_handling(
            tx, first, "siri", cause="Kabel løs", corrective_action="Festet kabelen"
        ),
    )
    run(store, lambda tx: register.close_signed(tx, first, "siri"))
    quarantine(store, "sysmex-1", T0 + timedelta(hours=3), 30)
    with store.connect() as conn:
        n = conn.execute(
            select(func.count())
            .select_from(deviations)
            .where(deviations.c.kind == "quarantine", deviations.c.state == "open")
        ).scalar_one()
        comments = conn.execute(
            select(func.count())
            .select_from(deviation_events)
            .where(deviation_events.c.deviation_id == first)
        ).scalar_one()
    # cause, corrective action, open -> in progress -> closed; the new message is not here
    assert n == 3 and comments == len(history) + 4
