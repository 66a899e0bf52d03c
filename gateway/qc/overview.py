"""Which instrument/test pairs the QC pages list, and how a stored QC status reads now (pure).

The pages list every configured instrument with every test a ``[[qc]]`` entry covers on it
(its own, its driver's, or one for every instrument), plus any pair the store has a status
for (controls arrived for a test without an entry). A status is shown as it is *now*: a
stored "in control" whose next controls were due before now reads "overdue" even before the
live judge has written that (the page must not say "in control" past the due time).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

from gateway.config import Config
from gateway.rules.facts import QcStatus

#: worst first: the dashboard shows an instrument's worst test
SEVERITY: Final[tuple[QcStatus, ...]] = (
    QcStatus.OUT_OF_CONTROL,
    QcStatus.OVERDUE,
    QcStatus.WARNING,
    QcStatus.NO_QC,
    QcStatus.IN_CONTROL,
)
#: the CSS tone of each status (the same tones as the dashboard's tiles)
TONE: Final = {
    QcStatus.OUT_OF_CONTROL: "bad",
    QcStatus.OVERDUE: "bad",
    QcStatus.WARNING: "warn",
    QcStatus.NO_QC: "plain",
    QcStatus.IN_CONTROL: "good",
}


def configured_pairs(config: Config) -> list[tuple[str, str]]:
    """(instrument id, test code) for every configured instrument and each test a ``[[qc]]``
    entry covers on it, in config order (instruments, then the entries' order)."""
    pairs: list[tuple[str, str]] = []
    for instrument in config.instruments:
        for entry in config.qc:
            if entry.instrument in ("", instrument.id, instrument.driver):
                pair = (instrument.id, entry.test)
                if pair not in pairs and config.qc_for(instrument.id, entry.test) is not None:
                    pairs.append(pair)
    return pairs


def shown_status(stored: str | None, due_at: datetime | None, now: datetime) -> QcStatus:
    """The status a page shows: ``no_qc`` without a row; ``overdue`` when the controls were
    due before ``now`` and nothing worse is stored; else the stored one."""
    if stored is None:
        return QcStatus.NO_QC
    status = QcStatus(stored)
    if status in (QcStatus.IN_CONTROL, QcStatus.WARNING) and due_at is not None and due_at < now:
        return QcStatus.OVERDUE
    return status


def worst(statuses: Iterable[QcStatus]) -> QcStatus | None:
    """The most severe of ``statuses`` (``SEVERITY``); None when there are none."""
    found = set(statuses)
    return next((s for s in SEVERITY if s in found), None)
