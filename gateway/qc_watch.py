"""The running gateway's watch on the QC schedules: every minute, each test whose controls
are due (``qc_status.due_at`` passed, or the every_n count reached) and not yet marked becomes
overdue, with a lockout and a deviation (``gateway.store.qc_state.mark_overdue``).

The lockout rule holds a result performed after its due time even before the watcher runs
(it reads ``due_at``); the watcher makes the status, the lockout and the deviation visible.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gateway.config import Config
from gateway.errors import StoreError
from gateway.rules import context_from_config
from gateway.store.qc_state import mark_overdue
from gateway.store.writer import Writer

log = logging.getLogger(__name__)

#: how often the schedules are looked at (a due time passes at most this late)
EVERY = timedelta(minutes=1)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class QcWatch:
    """Marks overdue QC once a minute."""

    def __init__(
        self, writer: Writer, config: Config, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self._writer = writer
        self._qc = context_from_config(config).qc
        self._clock = clock
        #: how many tests were marked overdue, in all
        self.marked = 0

    async def check_once(self) -> int | None:
        """Mark what is overdue now; how many, or None when the store refused."""
        if not self._qc:
            return 0
        try:
            found = await self._writer.write(lambda tx: mark_overdue(tx, self._qc))
        except StoreError as exc:
            log.warning("QC schedules not checked: %s", exc)
            return None
        except Exception:  # the watch must never stop the gateway
            log.exception("QC schedule check failed")
            return None
        self.marked += len(found)
        for instrument, test in found:
            log.warning("QC overdue: %s on %s", test, instrument)
        return len(found)

    async def run(self) -> None:
        """Until cancelled."""
        while True:
            await self.check_once()
            await asyncio.sleep(EVERY.total_seconds())
