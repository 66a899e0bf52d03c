"""Releasing the results a QC lockout held, all at once, after the lockout is lifted.

Each result is released as one signed ``release`` (``gateway.holds.sign_off.release``): the
same checks (role, open holds), the same signature row and audit per result. While the lockout
is open every one is refused (``lockout_open``).
"""

from __future__ import annotations

from gateway.holds.outcome import ActionOutcome
from gateway.holds.sign_off import release
from gateway.rules import RuleContext
from gateway.store.qc_state import get_lockout, held_by
from gateway.store.writer import Tx


def release_lockout_results(
    tx: Tx, lockout_id: int, person: str, note: str, *, context: RuleContext | None = None
) -> list[ActionOutcome]:
    """``person`` releases every result still held ``qc_lockout`` on the lockout's instrument
    and test, with ``note``; one outcome per result (refusals included). KeyError: no such
    lockout."""
    lockout = get_lockout(tx.conn, lockout_id)
    if lockout is None:
        raise KeyError(lockout_id)
    ctx = context or RuleContext()
    return [release(tx, rid, person, note=note, context=ctx) for rid in held_by(tx.conn, lockout)]
