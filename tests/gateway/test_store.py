"""The durable store on SQLite and PostgreSQL: ingest, duplicates, quarantine, audit chain."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, delete, func, select, text, update

from drivers.model import InboundMessage, Method, Observation
from gateway import lifecycle
from gateway.config import TestConfig as MappingConfig
from gateway.ingest import store_message
from gateway.model import State
from gateway.rules import RuleContext
from gateway.store import audit as audit_log
from gateway.store.tables import audit, holds, quarantine, raw_messages, results
from gateway.store.writer import GroupCommitWriter, Tx, run_in_transaction

VALID_FNR = "01010012356"  # checked below: a valid fødselsnummer
CONTEXT = RuleContext(
    tests={("", "CRP"): MappingConfig(code="CRP", nlk="NPU19748", unit="mg/L")},
)
NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def observation(
    value: str = "12",
    *,
    patient: str = VALID_FNR,
    code: str = "CRP",
    specimen: str = "S1",
    status: str = "F",
) -> Observation:
    return Observation(
        instrument_id="afinion-1",
        test_code=code,
        value=value,
        unit="mg/L",
        performed_at=NOW,
        operator_id="OP7",
        specimen_id=specimen,
        patient_id=patient,
        result_status=status,
    )


def message(*observations: Observation, raw: bytes = b"MSH|raw-1") -> InboundMessage:
    return InboundMessage("afinion-1", "test", raw, NOW, observations=observations)


def test_fixture_id_is_valid() -> None:
    from gateway.national_id import classify

    assert classify(VALID_FNR).valid


def test_ingest_stores_raw_results_and_audit(engine: Engine) -> None:
    outcome = run_in_transaction(
        engine,
        lambda tx: store_message(
            tx, message(observation("12"), observation("7", code="HBA1C")), CONTEXT
        ),
    )
    assert (outcome.stored, outcome.queued, outcome.held) == (2, 1, 1)
    with engine.connect() as conn:
        raw = conn.execute(select(raw_messages)).one()
        assert raw.raw == b"MSH|raw-1" and raw.outcome == "stored"
        rows = conn.execute(select(results).order_by(results.c.id)).all()
        assert [r.state for r in rows] == ["queued", "held"]
        assert rows[0].nlk_code == "NPU19748" and rows[0].method == Method.MEASURED.value
        assert rows[0].performed_at == NOW
        reasons = conn.execute(select(holds.c.reason)).scalars().all()
        assert reasons == ["unmapped_test"]
        trail = conn.execute(select(audit.c.action, audit.c.entity_id).order_by(audit.c.id)).all()
        first, second = (str(r.id) for r in rows)
        # one row for the group each message's results move as, one per held result
        assert [tuple(t) for t in trail] == [
            ("result.received", f"{first}-{second}"),
            ("result.held", second),
            ("result.queued", first),
        ]
        assert audit_log.verify(conn).ok


def test_invalid_patient_id_is_held(engine: Engine) -> None:
    bad = VALID_FNR[:-1] + str((int(VALID_FNR[-1]) + 1) % 10)
    run_in_transaction(
        engine, lambda tx: store_message(tx, message(observation(patient=bad)), CONTEXT)
    )
    with engine.connect() as conn:
        hold = conn.execute(select(holds)).one()
        assert hold.reason == "invalid_patient_id"
        assert bad not in hold.detail  # the full number never leaves the results table


def test_same_message_twice_is_stored_once(engine: Engine) -> None:
    msg = message(observation("12"))
    first = run_in_transaction(engine, lambda tx: store_message(tx, msg, CONTEXT))
    second = run_in_transaction(engine, lambda tx: store_message(tx, msg, CONTEXT))
    assert not first.duplicate_message and second.duplicate_message
    assert second.raw_message_id == first.raw_message_id
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(raw_messages)).scalar_one() == 1
        assert conn.execute(select(func.count()).select_from(results)).scalar_one() == 1


def test_same_result_in_another_message_is_stored_once(engine: Engine) -> None:
    run_in_transaction(
        engine, lambda tx: store_message(tx, message(observation("12"), raw=b"one"), CONTEXT)
    )
    again = run_in_transaction(
        engine,
        lambda tx: store_message(
            tx, message(observation("12"), observation("13", specimen="S2"), raw=b"two"), CONTEXT
        ),
    )
    assert (again.stored, again.duplicates) == (1, 1)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(results)).scalar_one() == 2


def test_undecodable_message_is_quarantined_with_its_bytes(engine: Engine) -> None:
    bad = InboundMessage(
        "afinion-1", "test", b"\x00\xffjunk", NOW, error="MSH-9: missing", error_field="MSH-9"
    )
    outcome = run_in_transaction(engine, lambda tx: store_message(tx, bad, CONTEXT))
    assert outcome.quarantined
    with engine.connect() as conn:
        row = conn.execute(
            select(quarantine, raw_messages.c.raw).join(
                raw_messages, raw_messages.c.id == quarantine.c.raw_message_id
            )
        ).one()
        assert row.raw == b"\x00\xffjunk" and row.field == "MSH-9" and row.state == "open"


def test_correction_points_at_the_original(engine: Engine) -> None:
    run_in_transaction(
        engine, lambda tx: store_message(tx, message(observation("12"), raw=b"a"), CONTEXT)
    )
    run_in_transaction(
        engine,
        lambda tx: store_message(tx, message(observation("14", status="C"), raw=b"b"), CONTEXT),
    )
    with engine.connect() as conn:
        first, second = conn.execute(select(results).order_by(results.c.id)).all()
        assert second.correction_of == first.id and second.result_status == "C"


def test_lifecycle_refuses_moves_outside_the_table(engine: Engine) -> None:
    run_in_transaction(engine, lambda tx: store_message(tx, message(observation()), CONTEXT))
    with pytest.raises(lifecycle.TransitionError):
        run_in_transaction(
            engine,
            lambda tx: lifecycle.move(tx, [1], State.QUEUED, State.ACKNOWLEDGED, actor="test"),
        )
    with pytest.raises(lifecycle.TransitionError):  # allowed move, wrong current state
        run_in_transaction(
            engine, lambda tx: lifecycle.move(tx, [1], State.SENT, State.ACKNOWLEDGED, actor="test")
        )
    run_in_transaction(
        engine, lambda tx: lifecycle.move(tx, [1], State.QUEUED, State.SENT, actor="test")
    )
    with engine.connect() as conn:
        assert conn.execute(select(results.c.state)).scalar_one() == "sent"
        last = conn.execute(select(audit).order_by(audit.c.id.desc()).limit(1)).one()
        assert (last.actor, last.action, last.before, last.after) == (
            "test",
            "result.sent",
            '{"state":"queued"}',
            '{"state":"sent"}',
        )


def test_audit_verify_detects_tampering(engine: Engine) -> None:
    for raw in (b"a", b"b", b"c"):
        run_in_transaction(
            engine,
            lambda tx, r=raw: store_message(tx, message(observation(r.decode()), raw=r), CONTEXT),
        )
    with engine.begin() as conn:
        assert audit_log.verify(conn).ok
        conn.execute(update(audit).where(audit.c.id == 3).values(reason="nothing to see"))
    with engine.connect() as conn:
        report = audit_log.verify(conn)
        assert not report.ok and report.first_bad_id == 3
    with engine.begin() as conn:
        conn.execute(delete(audit).where(audit.c.id == 3))
    with engine.connect() as conn:
        report = audit_log.verify(conn)
        assert not report.ok and "missing" in report.problem


def test_audit_verify_detects_a_truncated_tail(engine: Engine) -> None:
    run_in_transaction(engine, lambda tx: store_message(tx, message(observation()), CONTEXT))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit WHERE id = (SELECT MAX(id) FROM audit)"))
    with engine.connect() as conn:
        assert not audit_log.verify(conn).ok


async def test_group_commit_batches_and_isolates_a_failing_job(engine: Engine) -> None:
    writer = GroupCommitWriter(engine, max_batch=100)
    writer.start()
    try:

        def failing(tx: object) -> None:
            raise ValueError("boom")

        jobs = [
            writer.write(
                lambda tx, i=i: store_message(
                    tx,
                    message(observation(str(i), specimen=f"S{i}"), raw=f"m{i}".encode()),
                    CONTEXT,
                )
            )
            for i in range(200)
        ]
        bad = writer.write(failing)
        outcomes = await asyncio.gather(*jobs)
        with pytest.raises(ValueError, match="boom"):
            await bad
    finally:
        writer.stop()
    assert all(o.stored == 1 for o in outcomes)
    assert writer.batches < writer.jobs  # several jobs shared a commit
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(results)).scalar_one() == 200
        assert audit_log.verify(conn).ok


def test_an_urgent_job_joins_the_batch_in_flight(engine: Engine) -> None:
    writer = GroupCommitWriter(engine, max_batch=4)
    writer.start()
    started, release = threading.Event(), threading.Event()
    seen: list[tuple[str, object]] = []

    def slow(tx: Tx) -> None:
        seen.append(("slow", tx.now))
        started.set()
        assert release.wait(10)

    try:
        first = writer.submit(slow)
        assert started.wait(10)
        normal = writer.submit(lambda tx: seen.append(("normal", tx.now)))
        urgent = writer.submit(lambda tx: seen.append(("urgent", tx.now)), urgent=True)
        release.set()
        for future in (first, normal, urgent):
            future.result(10)
    finally:
        writer.stop()
    # the urgent job rode in the slow job's transaction; the normal one waited for the next
    assert [name for name, _ in seen] == ["slow", "urgent", "normal"]
    assert seen[0][1] == seen[1][1] != seen[2][1]
    assert writer.batches == 2


@pytest.mark.parametrize(
    ("ids", "texts"),
    [
        ([5], ["5"]),
        ([3, 1, 2, 7, 9, 8, 12], ["1-3,7-9,12"]),
        ([4, 4, 5], ["4-5"]),
        ([], []),
    ],
)
def test_audit_ids_compact_to_ranges_and_back(ids: list[int], texts: list[str]) -> None:
    assert audit_log.compact_ids(ids) == texts
    assert sorted(i for t in texts for i in audit_log.expand_ids(t)) == sorted(set(ids))


def test_audit_ids_split_to_fit_the_column() -> None:
    ids = list(range(1_000_000, 1_000_400, 2))  # 200 ids, no two consecutive
    texts = audit_log.compact_ids(ids)
    assert len(texts) > 1 and all(len(t) <= audit_log.ENTITY_ID_WIDTH for t in texts)
    assert [i for t in texts for i in audit_log.expand_ids(t)] == ids
