"""Rule facts from the store: a rule sees a fact's change after the bump, and facts cost no
query per message (one version read per writer batch, a load only after a change)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    delete,
    event,
    insert,
    select,
)

from drivers.model import InboundMessage, Method, Observation
from gateway.config import TestConfig as MappingConfig
from gateway.ingest import Ingestor, store_message
from gateway.model import Hold, Result
from gateway.people.certification import Certification, CertStatus
from gateway.people.tasks import Task, WorkItem
from gateway.rule_context import RuleContexts
from gateway.rules import Facts, QcFact, QcStatus, RuleContext, unmapped_test_rule
from gateway.store import facts as store_facts
from gateway.store.engine import make_engine, upgrade
from gateway.store.tables import results
from gateway.store.writer import GroupCommitWriter, Tx, run_in_transaction

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CONTEXT = RuleContext(tests={("", "CRP"): MappingConfig(code="CRP", nlk="NPU19748")})

# A stand-in for the people issue's tables: which operator is certified for which test. The
# real tables and rules come later; this one is the test's own.
_scratch = MetaData()
certified = Table(
    "test_certified",
    _scratch,
    Column("operator_id", String(64), primary_key=True),
    Column("task", String(64), primary_key=True),
)


def load_certifications(conn: Connection) -> Facts:
    by_operator: dict[str, list[Certification]] = {}
    for row in conn.execute(select(certified.c.operator_id, certified.c.task)):
        cert = Certification(row.operator_id, Task("*", row.task), CertStatus.CERTIFIED)
        by_operator.setdefault(row.operator_id, []).append(cert)
    return Facts(
        operators={("", op): op for op in by_operator},
        certifications={op: tuple(certs) for op, certs in by_operator.items()},
    )


def work(instrument: str, code: str) -> WorkItem:
    return WorkItem(instrument_id=instrument, driver="", test_code=code)


# a hold as the rules build it, under the test's own reason code
_HOLD = unmapped_test_rule(
    Result("afinion-1", "GLU", "1", "NM", "", "", (), Method.MEASURED, None, "", "", ""),
    RuleContext(),
)[0]


def certified_rule(result: Result, context: RuleContext) -> Sequence[Hold]:
    """Hold a result whose operator is not certified for its test (a pure rule over facts)."""
    person = context.facts.person_for(result.instrument_id, result.operator_id)
    if person and context.facts.certification_for(person, work("", result.test_code)):
        return ()
    return (dataclasses.replace(_HOLD, reason="uncertified_operator"),)


def message(n: int, operator: str = "OP7") -> InboundMessage:
    obs = Observation(
        instrument_id="afinion-1",
        test_code="CRP",
        value=str(n),
        unit="mg/L",
        performed_at=NOW,
        operator_id=operator,
        specimen_id=f"S{n}",
        patient_id="01010012356",
    )
    return InboundMessage("afinion-1", "test", f"raw-{n}".encode(), NOW, observations=(obs,))


def certify(operator: str, task: str) -> Any:
    def job(tx: Tx) -> None:
        tx.conn.execute(insert(certified).values(operator_id=operator, task=task))
        store_facts.bump(tx)

    return job


def revoke(operator: str, task: str) -> Any:
    def job(tx: Tx) -> None:
        tx.conn.execute(
            delete(certified).where(certified.c.operator_id == operator, certified.c.task == task)
        )
        store_facts.bump(tx)

    return job


@pytest.fixture
def store(engine: Engine) -> Engine:
    _scratch.create_all(engine)
    return engine


@pytest.fixture
def writer(store: Engine) -> Iterator[GroupCommitWriter]:
    w = GroupCommitWriter(store, max_batch=32)
    w.start()
    yield w
    w.stop()


def states(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(results.c.state).order_by(results.c.id)).scalars())


def test_facts_are_empty_by_default_and_frozen() -> None:
    facts = Facts()
    assert not facts.certifications and not facts.qc and not facts.operators
    assert RuleContext().facts == facts
    crp = Certification("OP7", Task("*", "CRP"), CertStatus.CERTIFIED)
    source = {"OP7": (crp,)}
    failed = QcFact(QcStatus.OUT_OF_CONTROL, since=NOW)
    filled = Facts(certifications=source, qc={("afinion-1", "CRP"): failed})
    source["OP8"] = (crp,)  # the snapshot does not follow its source
    assert filled.certification_for("OP7", work("afinion-1", "CRP")) == crp
    assert filled.certification_for("OP8", work("afinion-1", "CRP")) is None
    assert filled.certification_for("OP7", work("afinion-1", "HbA1c")) is None
    assert filled.qc_status("afinion-1", "CRP") == failed
    assert filled.qc_status("afinion-1", "HbA1c") is None
    with pytest.raises(TypeError):
        filled.certifications["OP9"] = ()  # type: ignore[index]


async def test_a_rule_sees_a_fact_change_after_the_bump(
    store: Engine, writer: GroupCommitWriter
) -> None:
    ingestor = Ingestor(writer, CONTEXT, rules=(certified_rule,), facts=load_certifications)
    assert (await ingestor.ingest(message(1))).held == 1
    await writer.write(certify("OP7", "CRP"))
    assert (await ingestor.ingest(message(2))).queued == 1
    assert (await ingestor.ingest(message(3))).queued == 1  # from the cache, still current
    await writer.write(revoke("OP7", "CRP"))
    assert (await ingestor.ingest(message(4))).held == 1
    assert states(store) == ["held", "queued", "queued", "held"]
    assert ingestor.contexts.loads == 3  # at the start and after each of the two changes


async def test_a_change_committed_by_another_process_is_seen(
    store: Engine, writer: GroupCommitWriter, store_url: str
) -> None:
    ingestor = Ingestor(writer, CONTEXT, rules=(certified_rule,), facts=load_certifications)
    assert (await ingestor.ingest(message(1))).held == 1
    other = make_engine(store_url)  # a CLI command has its own engine and connections
    try:
        run_in_transaction(other, certify("OP7", "CRP"))
    finally:
        other.dispose()
    assert (await ingestor.ingest(message(2))).queued == 1


def test_a_change_earlier_in_the_same_transaction_is_seen(store: Engine) -> None:
    contexts = RuleContexts(CONTEXT, load_certifications)

    def batch(tx: Tx) -> list[int]:
        before = store_message(tx, message(1), contexts.get(tx), (certified_rule,))
        certify("OP7", "CRP")(tx)
        after = store_message(tx, message(2), contexts.get(tx), (certified_rule,))
        return [before.held, after.queued]

    assert run_in_transaction(store, batch) == [1, 1]
    after_commit = run_in_transaction(
        store, lambda tx: store_message(tx, message(3), contexts.get(tx), (certified_rule,))
    )
    assert after_commit.queued == 1


def test_facts_of_a_rolled_back_change_are_not_kept(store: Engine) -> None:
    contexts = RuleContexts(CONTEXT, load_certifications)

    def change_then_fail(tx: Tx) -> None:
        certify("OP7", "CRP")(tx)
        assert contexts.get(tx).facts.certification_for(
            "OP7", work("", "CRP")
        )  # seen inside the transaction
        raise RuntimeError("the job failed after the change")

    with pytest.raises(RuntimeError):
        run_in_transaction(store, change_then_fail)
    # another change reaches the version number the rolled-back one had: facts read inside
    # the rollback must not pass for it
    run_in_transaction(store, certify("OP8", "CRP"))
    outcome = run_in_transaction(
        store, lambda tx: store_message(tx, message(1), contexts.get(tx), (certified_rule,))
    )
    assert outcome.held == 1


class StatementCounter:
    """Counts the statements SQLAlchemy sends that touch a given table."""

    def __init__(self, engine: Engine) -> None:
        self.seen: list[str] = []
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, *args: Any) -> None:
        self.seen.append(str(args[2]))

    def touching(self, table: str) -> int:
        return sum(1 for sql in self.seen if table in sql)


async def test_no_query_per_message_while_the_facts_are_unchanged(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    _scratch.create_all(engine)
    counter = StatementCounter(engine)
    writer = GroupCommitWriter(engine, max_batch=32)
    ingestor = Ingestor(writer, CONTEXT, rules=(certified_rule,), facts=load_certifications)

    async def flood(first: int, end: int) -> list[int]:
        # queue every job before the writer runs, so the batches are exactly max_batch long
        tasks = [asyncio.create_task(ingestor.ingest(message(n))) for n in range(first, end)]
        await asyncio.sleep(0)
        writer.start()
        try:
            return [o.queued for o in await asyncio.gather(*tasks)]
        finally:
            writer.stop()

    try:
        assert await flood(0, 64) == [0] * 64  # nobody is certified yet: all held
        assert writer.batches == 2
        # one version read per batch, one load of the facts for all 64 messages
        assert counter.touching("facts_version") == 2
        assert counter.touching("test_certified") == 1

        run_in_transaction(engine, certify("OP7", "CRP"))
        base = (counter.touching("facts_version"), counter.touching("test_certified"))
        assert await flood(64, 128) == [1] * 64  # the change is seen by every message after it
        assert writer.batches == 4
        assert counter.touching("facts_version") - base[0] == 2
        assert counter.touching("test_certified") - base[1] == 1
        assert ingestor.contexts.loads == 2
    finally:
        engine.dispose()
