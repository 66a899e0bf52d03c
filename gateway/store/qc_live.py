"""Judging control values as they are stored: the lot and target, the run, the Westgard rules,
the QC status, and a lockout when it fails (issue 11; being built: until then it judges
nothing)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.rules import RuleContext
from gateway.store.writer import Tx


def evaluate_controls(tx: Tx, qc_ids: Sequence[int], context: RuleContext) -> None:
    """Judge the stored controls ``qc_ids`` (one ingest job's) in ``tx``."""
    del tx, qc_ids, context
