"""The store's side of rule facts: the version counter that a fact change bumps, and the loader.

Every transaction that changes a fact rules read (a certification, a QC status) calls ``bump``
in that same transaction; readers compare ``current`` with the version their facts were loaded
at, and reload only when it moved. The counter lives in the database, so a change committed by
another process (a CLI command, a second gateway on PostgreSQL) is seen as well.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from gateway.rules.facts import Facts
from gateway.store.tables import facts_version
from gateway.store.writer import Tx

_MEMO = "facts_version"  # key in ``Tx.memo``
_READ = select(facts_version.c.version).where(facts_version.c.id == 1)
_BUMP = (
    update(facts_version)
    .where(facts_version.c.id == 1)
    .values(version=facts_version.c.version + 1)
    .returning(facts_version.c.version)
)


@dataclass(frozen=True, slots=True)
class FactsVersion:
    """The facts' version as a transaction sees it."""

    number: int
    #: bumped by this transaction, not yet committed: facts read now may still be rolled back
    changed_here: bool = False


def current(tx: Tx) -> FactsVersion:
    """The facts' version, read once per transaction (a writer batch shares one read)."""
    seen: FactsVersion | None = tx.memo.get(_MEMO)
    if seen is None:
        seen = tx.memo[_MEMO] = FactsVersion(int(tx.conn.execute(_READ).scalar_one()))
    return seen


def bump(tx: Tx) -> int:
    """Mark the facts changed; call it in the transaction that changes one. The new version.

    Later jobs of the same batch see the change at once (``current`` says so); other
    transactions see it once this one commits.
    """
    number = int(tx.conn.execute(_BUMP).scalar_one())
    tx.memo[_MEMO] = FactsVersion(number, changed_here=True)
    return number


def load_facts(conn: Connection) -> Facts:
    """Every fact rules read, from the store (a ``FactsLoader``): people and certifications
    (``gateway.store.people``) and QC status (``gateway.store.qc_state``). Each reads its own
    tables in as few queries as it can: this runs once per change, not per message.
    """

    from gateway.store.people import load_people  # they bump this module's counter
    from gateway.store.qc_state import load_qc_facts

    return dataclasses.replace(load_people(conn), qc=load_qc_facts(conn))
