"""Group commit: one writer thread runs queued jobs in shared transactions and fsyncs once.

Durability is kept: a job's future resolves only after the transaction holding it committed,
so "stored before ACK" holds while many analysers share one fsync. A failing job does not
poison its batch: the batch is rolled back and its jobs re-run one transaction each. A
``fence`` (the gateway's lease check) runs first in every transaction: when it refuses, the
whole batch fails at once and nothing is written. A job that fails because the store is
broken (``gateway.store.health.store_failure``) fails the store's ``health``: the gateway then
acknowledges nothing until a check passes again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine

from gateway.errors import StoreError
from gateway.store import audit as audit_log
from gateway.store import bulk
from gateway.store.engine import write_transaction
from gateway.store.health import StoreHealth, db_error_text, is_database_error

T = TypeVar("T")
log = logging.getLogger(__name__)

Event = tuple[str, str, Mapping[str, Any]]


@dataclass(slots=True)
class Tx:
    """What a job gets: the connection, the batch's clock, and buffers flushed at commit."""

    conn: Connection
    now: datetime
    audit_entries: list[audit_log.AuditEntry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    #: messages received per instrument in this transaction; one UPDATE each at commit
    instrument_messages: dict[str, int] = field(default_factory=dict)
    #: values read once per transaction, keyed by the module that owns them (the rule facts'
    #: version: see ``gateway.store.facts``), so a batch of jobs shares one read
    memo: dict[str, Any] = field(default_factory=dict)

    def audit(
        self,
        *,
        actor: str,
        action: str,
        entity: str,
        entity_id: object,
        reason: str = "",
        before: Mapping[str, Any] | str | None = None,
        after: Mapping[str, Any] | str | None = None,
    ) -> None:
        """Append an audit row; ``before``/``after`` are snapshots (or their canonical JSON)."""
        self.audit_entries.append(
            audit_log.AuditEntry(
                self.now,
                actor,
                action,
                entity,
                str(entity_id),
                reason,
                before if isinstance(before, str) else audit_log.to_json(before),
                after if isinstance(after, str) else audit_log.to_json(after),
            )
        )

    def audit_group(
        self,
        *,
        actor: str,
        action: str,
        entity: str,
        ids: Iterable[int],
        reason: str = "",
        before: Mapping[str, Any] | str | None = None,
        after: Mapping[str, Any] | str | None = None,
    ) -> None:
        """One audit row for the same move of many entities (ids as ranges, ``"7-19,23"``)."""
        before_text = before if isinstance(before, str) else audit_log.to_json(before)
        after_text = after if isinstance(after, str) else audit_log.to_json(after)
        for entity_id in audit_log.compact_ids(ids):
            self.audit_entries.append(
                audit_log.AuditEntry(
                    self.now, actor, action, entity, entity_id, reason, before_text, after_text
                )
            )

    def event(self, kind: str, instrument: str, payload: Mapping[str, Any]) -> None:
        """Publish ``payload`` on the bus once (and only if) this transaction commits."""
        self.events.append((kind, instrument, payload))


Job = Callable[[Tx], Any]
#: runs first in each writer transaction; raising refuses the whole batch (see ``Lease.fence``)
Fence = Callable[[Connection], None]


class Writer(Protocol):
    """What a store client needs of a writer: the group-commit writer, or the LIS worker's
    proxy to its parent's writer (``gateway.lis.worker.RemoteWriter``)."""

    @property
    def engine(self) -> Engine: ...

    def submit(self, job: Callable[[Tx], T], *, urgent: bool = False) -> Future[T]: ...

    async def write(self, job: Callable[[Tx], T], *, urgent: bool = False) -> T: ...


def run_in_transaction(engine: Engine, job: Callable[[Tx], T], now: datetime | None = None) -> T:
    """Run one job in its own transaction (CLI commands and tests use this directly)."""
    return run_with_events(engine, job, now)[0]


def run_with_events(
    engine: Engine, job: Callable[[Tx], T], now: datetime | None = None
) -> tuple[T, list[Event]]:
    """``run_in_transaction``, and the events the job raised (``Tx.event``), committed: for a
    caller that has a bus to publish them on (the web inside a running gateway)."""
    outcomes, events = _run_batch(engine, [job], now or datetime.now(UTC))
    if isinstance(outcomes[0], BaseException):
        raise outcomes[0]
    return outcomes[0], events


class _Fenced(Exception):
    """The fence refused the transaction: every job of the batch fails with ``error``."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _run_batch(
    engine: Engine,
    jobs: list[Job],
    now: datetime,
    joiners: Callable[[], list[Job]] | None = None,
    fence: Fence | None = None,
) -> tuple[list[Any], list[Event]]:
    """Run jobs in one transaction; if any fails, run each alone.

    ``joiners``, called after each job, returns jobs that should ride along in this
    transaction (urgent ones that arrived meanwhile); they are appended to ``jobs``. Returns
    one outcome per job (its result, or the exception it raised) and the events of the
    transactions that committed.
    """
    try:
        with write_transaction(engine) as conn:
            if fence is not None:
                try:
                    fence(conn)
                except Exception as exc:
                    raise _Fenced(exc) from exc
            tx = Tx(conn, now)
            outcomes = []
            index = 0
            while index < len(jobs):
                outcomes.append(jobs[index](tx))
                index += 1
                if joiners is not None:
                    jobs.extend(joiners())
            _flush_instrument_activity(tx)
            audit_log.append(conn, tx.audit_entries)
        return outcomes, tx.events
    except _Fenced as fenced:  # no job ran: none would pass the fence alone either
        return [_translate(fenced.error) for _ in jobs], []
    except Exception as exc:
        if len(jobs) == 1:
            return [_translate(exc)], []
    outcomes, events = [], []
    for job in jobs:
        single, single_events = _run_batch(engine, [job], now, fence=fence)
        outcomes.extend(single)
        events.extend(single_events)
    return outcomes, events


def _flush_instrument_activity(tx: Tx) -> None:
    if not tx.instrument_messages:
        return
    now = bulk.db_time(tx.conn, tx.now)
    for instrument_id, count in tx.instrument_messages.items():
        bulk.fetch(tx.conn, _INSTRUMENT_ACTIVITY, (now, now, count, instrument_id))


_INSTRUMENT_ACTIVITY = (
    "UPDATE instruments SET last_message_at = ?, last_seen_at = ?,"
    " messages_received = messages_received + ? WHERE id = ?"
)


def _translate(exc: Exception) -> BaseException:
    """A database error as a ``StoreError`` whose text is the driver's message only: never
    SQLAlchemy's rendering, which appends the statement and its parameters (patient data)."""
    if isinstance(exc, StoreError) or not is_database_error(exc):
        return exc
    error = StoreError(f"database write failed: {db_error_text(exc)}")
    error.__cause__ = exc
    return error


class GroupCommitWriter:
    """Owns the writer thread. ``submit`` is thread-safe; ``write`` awaits from asyncio.

    Two lanes. Urgent jobs (the LIS forwarder's bookkeeping) go first, and those that arrive
    while a batch runs join that batch's transaction, so a flood of ingest jobs cannot make
    delivery wait more than the rest of one batch. Batches of normal jobs are kept small
    (``max_batch``): one fsync is cheap next to the Python work per job.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 32,
        on_events: Callable[[list[Event]], None] | None = None,
        fence: Fence | None = None,
        health: StoreHealth | None = None,
    ) -> None:
        self.engine = engine
        #: failed by a job that meets a broken store (the gateway's; None: not watched)
        self.health = health
        #: checked first in every transaction (the gateway sets it once it holds the lease)
        self.fence = fence
        self._max_batch = max_batch
        self._ready = threading.Condition()
        self._urgent: collections.deque[tuple[Job, Future[Any]]] = collections.deque()
        self._normal: collections.deque[tuple[Job, Future[Any]]] = collections.deque()
        self._stopping = False
        self._on_events = on_events
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.jobs = 0

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="trygg-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish queued jobs, then end the thread."""
        if self._thread is not None:
            with self._ready:
                self._stopping = True
                self._ready.notify()
            self._thread.join()
            self._thread = None

    def submit(self, job: Callable[[Tx], T], *, urgent: bool = False) -> Future[T]:
        future: Future[T] = Future()
        with self._ready:
            (self._urgent if urgent else self._normal).append((job, future))
            self._ready.notify()
        return future

    async def write(self, job: Callable[[Tx], T], *, urgent: bool = False) -> T:
        return await asyncio.wrap_future(self.submit(job, urgent=urgent))

    def _loop(self) -> None:
        while True:
            with self._ready:
                while not self._urgent and not self._normal and not self._stopping:
                    self._ready.wait()
                if not self._urgent and not self._normal:
                    return  # stopping, and everything queued before stop() is done
                batch = list(self._urgent)
                self._urgent.clear()
                while self._normal and len(batch) < self._max_batch:
                    batch.append(self._normal.popleft())
            self._run(batch)

    def _take_urgent(self) -> list[tuple[Job, Future[Any]]]:
        if not self._urgent:  # a racy peek is fine: a job missed now starts the next batch
            return []
        with self._ready:
            taken = list(self._urgent)
            self._urgent.clear()
        return [(job, f) for job, f in taken if f.set_running_or_notify_cancel()]

    def _run(self, batch: list[tuple[Job, Future[Any]]]) -> None:
        # a waiter that was cancelled (its task stopped) no longer wants the job done; the
        # others are marked running so they can no longer be cancelled under us
        batch = [(job, future) for job, future in batch if future.set_running_or_notify_cancel()]
        if not batch:
            return
        jobs = [job for job, _ in batch]

        def joiners() -> list[Job]:
            if len(batch) >= 4 * self._max_batch:
                return []  # a batch must end some time: later urgent jobs start the next
            joined = self._take_urgent()
            batch.extend(joined)
            return [job for job, _ in joined]

        try:
            outcomes, events = _run_batch(self.engine, jobs, datetime.now(UTC), joiners, self.fence)
        except Exception as exc:  # the database is gone: fail every job, keep the thread alive
            log.error("writer batch failed: %s", exc.__class__.__name__)
            outcomes, events = [_translate(exc) for _ in jobs], []
        self.batches += 1
        self.jobs += len(jobs)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if self.health is not None:
                    # before the waiter hears of it: ingest looks at the health next
                    self.health.fail_from(outcome, source="write")
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if events and self._on_events is not None:
            try:
                self._on_events(events)
            except Exception:
                log.exception("event hand-off failed")
