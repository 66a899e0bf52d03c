"""Group commit: one writer thread runs queued jobs in shared transactions and fsyncs once.

Durability is kept: a job's future resolves only after the transaction holding it committed,
so "stored before ACK" holds while many analysers share one fsync. A failing job does not
poison its batch: the batch is rolled back and its jobs re-run one transaction each.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
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


class Writer(Protocol):
    """What a store client needs of a writer: the group-commit writer, or the LIS worker's
    proxy to its parent's writer (``gateway.lis.worker.RemoteWriter``)."""

    @property
    def engine(self) -> Engine: ...

    def submit(self, job: Callable[[Tx], T], *, urgent: bool = False) -> Future[T]: ...

    async def write(self, job: Callable[[Tx], T], *, urgent: bool = False) -> T: ...


def run_in_transaction(engine: Engine, job: Callable[[Tx], T], now: datetime | None = None) -> T:
    """Run one job in its own transaction (CLI commands and tests use this directly)."""
    outcomes, _events = _run_batch(engine, [job], now or datetime.now(UTC))
    if isinstance(outcomes[0], BaseException):
        raise outcomes[0]
    return outcomes[0]  # type: ignore[no-any-return]


def _run_batch(engine: Engine, jobs: list[Job], now: datetime) -> tuple[list[Any], list[Event]]:
    """Run jobs in one transaction; if any fails, run each alone.

    Returns one outcome per job (its result, or the exception it raised) and the events of the
    transactions that committed.
    """
    try:
        with write_transaction(engine) as conn:
            tx = Tx(conn, now)
            outcomes = [job(tx) for job in jobs]
            _flush_instrument_activity(tx)
            audit_log.append(conn, tx.audit_entries)
        return outcomes, tx.events
    except Exception as exc:
        if len(jobs) == 1:
            return [_translate(exc)], []
    outcomes, events = [], []
    for job in jobs:
        single, single_events = _run_batch(engine, [job], now)
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
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, SQLAlchemyError):
        error = StoreError(f"database write failed: {exc.__class__.__name__}: {exc}")
        error.__cause__ = exc
        return error
    return exc


_URGENT, _NORMAL, _STOP = 0, 1, 2


class GroupCommitWriter:
    """Owns the writer thread. ``submit`` is thread-safe; ``write`` awaits from asyncio.

    Urgent jobs (the LIS forwarder's bookkeeping) go to the front of the queue, so a flood of
    ingest jobs cannot starve delivery; batches are kept small (``max_batch``) because one
    fsync is cheap next to the Python work per job, and a small batch bounds how long an urgent
    job waits for the batch in flight.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 32,
        on_events: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.engine = engine
        self._max_batch = max_batch
        self._queue: queue.PriorityQueue[tuple[int, int, Job | None, Future[Any] | None]] = (
            queue.PriorityQueue()
        )
        self._order = itertools.count()
        self._on_events = on_events
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.jobs = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="trygg-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish queued jobs, then end the thread."""
        if self._thread is not None:
            self._queue.put((_STOP, next(self._order), None, None))
            self._thread.join()
            self._thread = None

    def submit(self, job: Callable[[Tx], T], *, urgent: bool = False) -> Future[T]:
        future: Future[T] = Future()
        self._queue.put((_URGENT if urgent else _NORMAL, next(self._order), job, future))
        return future

    async def write(self, job: Callable[[Tx], T], *, urgent: bool = False) -> T:
        return await asyncio.wrap_future(self.submit(job, urgent=urgent))

    def _loop(self) -> None:
        while True:
            priority, _, job, future = self._queue.get()
            if priority == _STOP:
                return
            assert job is not None and future is not None
            batch = [(job, future)]
            while len(batch) < self._max_batch:
                try:
                    priority, order, job, future = self._queue.get_nowait()
                except queue.Empty:
                    break
                if priority == _STOP:
                    self._queue.put((priority, order, job, future))  # after this batch
                    break
                assert job is not None and future is not None
                batch.append((job, future))
            self._run(batch)

    def _run(self, batch: list[tuple[Job, Future[Any]]]) -> None:
        # a waiter that was cancelled (its task stopped) no longer wants the job done; the
        # others are marked running so they can no longer be cancelled under us
        batch = [(job, future) for job, future in batch if future.set_running_or_notify_cancel()]
        if not batch:
            return
        jobs = [job for job, _ in batch]
        try:
            outcomes, events = _run_batch(self.engine, jobs, datetime.now(UTC))
        except Exception as exc:  # the database is gone: fail every job, keep the thread alive
            log.error("writer batch failed: %s", exc.__class__.__name__)
            outcomes, events = [_translate(exc) for _ in jobs], []
        self.batches += 1
        self.jobs += len(jobs)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if events and self._on_events is not None:
            try:
                self._on_events(events)
            except Exception:
                log.exception("event hand-off failed")
