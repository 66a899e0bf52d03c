"""The rule context each ingest job gets: config facts plus store facts, reloaded on change.

Rules stay pure functions ``(result, context) -> holds``; the pipeline does the reading. The
store's facts are loaded through a ``FactsLoader`` port and kept until their version
(``gateway.store.facts``) moves, so a batch of ingest jobs costs one small version read, and
the facts themselves are read again only after a change.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from sqlalchemy import Connection

from gateway.rules import RuleContext
from gateway.rules.facts import Facts
from gateway.store import facts as store_facts
from gateway.store.writer import Tx


class FactsLoader(Protocol):
    """Reads every fact rules need from the store, inside the caller's transaction."""

    def __call__(self, conn: Connection, /) -> Facts: ...


class RuleContexts:
    """Builds each transaction's rule context from a config context and the store's facts.

    Used by the jobs of one writer (one thread); the cached context is shared, never changed.
    """

    def __init__(self, base: RuleContext, loader: FactsLoader = store_facts.load_facts) -> None:
        self._base = base
        self._loader = loader
        self._cached: tuple[int, RuleContext] | None = None
        #: how many times the facts were read (the tests count them)
        self.loads = 0

    def get(self, tx: Tx) -> RuleContext:
        """The context for a job in ``tx``: the cached one unless the facts changed."""
        version = store_facts.current(tx)
        cached = self._cached
        if cached is not None and cached[0] == version.number and not version.changed_here:
            return cached[1] if cached[1].now == tx.now else self._at(cached[1], tx)
        context = dataclasses.replace(self._base, facts=self._loader(tx.conn), now=tx.now)
        self.loads += 1
        # facts changed by this uncommitted transaction may yet be rolled back: use them for
        # this job only, and read again in the next transaction
        if not version.changed_here:
            self._cached = (version.number, context)
        return context

    def _at(self, context: RuleContext, tx: Tx) -> RuleContext:
        """``context`` at the time of ``tx`` (one copy per transaction, kept for its batch)."""
        moved = dataclasses.replace(context, now=tx.now)
        assert self._cached is not None
        self._cached = (self._cached[0], moved)
        return moved


def current_context(
    tx: Tx, base: RuleContext, loader: FactsLoader = store_facts.load_facts
) -> RuleContext:
    """``base`` with the store's facts as they are now: for a one-off job (a replay)."""
    return dataclasses.replace(base, facts=loader(tx.conn), now=tx.now)
