"""The store's schedule: run the check every ``check_interval_s``, and every
``recheck_interval_s`` while the store is failed, until a check (and a probe write) passes.

The check runs on a worker thread (quick_check reads the whole SQLite file); a failure seen by
a write between two checks shortens the wait to the recheck interval at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from gateway.store.check import CheckReport
from gateway.store.health import StoreHealth

log = logging.getLogger(__name__)


class StoreWatch:
    """Checks the store on a schedule and heals or fails its health."""

    def __init__(
        self,
        health: StoreHealth,
        check: Callable[[], CheckReport],
        *,
        interval_s: float,
        recheck_s: float,
        probe: Callable[[], Awaitable[object]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.health = health
        self._check = check
        self.interval_s = interval_s
        self.recheck_s = min(recheck_s, interval_s)
        self._probe = probe
        self._clock = clock

    async def run(self) -> None:
        """Until cancelled: wait, check, repeat (the first check waits one interval: the
        gateway checked the store at start)."""
        last = self._clock()
        while True:
            wait = self.interval_s if self.health.ok else self.recheck_s
            remaining = last + wait - self._clock()
            if remaining > 0:
                # short naps, so a failure seen meanwhile moves to the recheck pace at once
                await asyncio.sleep(min(remaining, self.recheck_s))
                continue
            await self.check_once()
            last = self._clock()

    async def check_once(self) -> CheckReport:
        """One check now: fail the health, or heal it if it was failed and the probe writes."""
        generation = self.health.generation
        report = await asyncio.to_thread(self._check)
        self.health.checked(report.ok, report.seconds)
        if not report.ok:
            self.health.fail(report.problem, report.detail, source="check")
            return report
        if not self.health.ok and self._probe is not None:
            try:
                await self._probe()  # a write through the writer: a full disk stays failed
            except Exception as exc:  # the writer marked the failure again when it was one
                log.debug("store probe write failed: %s", exc.__class__.__name__)
                return report
        self.health.passed(generation)
        return report


__all__ = ["StoreWatch"]
