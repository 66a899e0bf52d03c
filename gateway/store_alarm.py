"""What the running gateway says when its store fails or heals, and the error a refused
message carries.

``StoreAlarm`` is the ``StoreHealth.on_change`` of the gateway: an ERROR log naming the store
and what to do, the bus's ``store`` event, and, once the store can be written again, an audit
row that keeps what was wrong and since when. It runs on whichever thread saw the change (the
writer's, the event loop's); the bus and the writer's ``submit`` are safe from any thread.
"""

from __future__ import annotations

import logging

from gateway.bus.publisher import EventBus
from gateway.catalogue import FALLBACK_LANGUAGE, text
from gateway.errors import StoreError, StoreUnavailableError
from gateway.store.check import shown_store
from gateway.store.health import Problem, StoreHealth
from gateway.store.writer import Tx, Writer

log = logging.getLogger(__name__)

#: the health's fields the ``store`` event carries
_EVENT_KEYS = ("status", "problem", "source", "detail", "since")


def store_recovered_job(tx: Tx, was: Problem, backend: str) -> None:
    """The audit trail keeps that the store was failed, once it can be written again."""
    tx.audit(
        actor="system:gateway",
        action="store.recovered",
        entity="store",
        entity_id=backend,
        reason=f"failed since {was.since.isoformat()} ({was.code}, {was.source}): {was.detail}",
    )


class StoreAlarm:
    """Logs, publishes and (on healing) audits each change of the store's health."""

    def __init__(self, store_url: str, bus: EventBus, writer: Writer) -> None:
        self._store = shown_store(store_url)
        self._bus = bus
        self._writer = writer
        #: the problem last announced (the health forgets it when it heals)
        self._was: Problem | None = None

    def __call__(self, health: StoreHealth) -> None:
        en = FALLBACK_LANGUAGE
        problem = health.problem
        if problem is not None:
            self._was = problem
            log.error(
                "%s",
                text(
                    en,
                    "store.alarm.log",
                    problem=problem.code,
                    what=text(en, f"store.problem.{problem.code}"),
                    source=problem.source,
                    detail=problem.detail,
                    store=self._store,
                    todo=text(en, f"store.todo.{health.backend}"),
                ),
            )
        else:
            was, self._was = self._was, None
            log.warning("%s", text(en, "store.recovered.log", problem=was.code if was else "–"))
            if was is not None:
                self._writer.submit(lambda tx: store_recovered_job(tx, was, health.backend))
        snapshot = health.snapshot()
        self._bus.publish("store", "", {key: snapshot[key] for key in _EVENT_KEYS})


def not_stored(health: StoreHealth, cause: StoreError | None = None) -> StoreUnavailableError:
    """The error ingest raises for a message it did not store: the store's problem when it is
    failed, else the write's own error."""
    problem = health.problem
    if problem is not None:
        return StoreUnavailableError(
            text(FALLBACK_LANGUAGE, "store.not_stored", problem=problem.code)
        )
    return StoreUnavailableError(
        text(FALLBACK_LANGUAGE, "store.not_stored_write", detail=str(cause or ""))
    )


__all__ = ["StoreAlarm", "not_stored", "store_recovered_job"]
