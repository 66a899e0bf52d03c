"""The running gateway's daily look at the certifications: at start, and then each day just
after midnight in the site's time zone (when due dates pass), every recertification reminder,
overdue certification and inactivity warning goes out as an MQTT ``certification`` event.

The events ride a writer job (``gateway.store.reminders.announce_notices``), so they reach the
bus the way every other event does: after the job's transaction commits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gateway.config import Config
from gateway.errors import StoreError
from gateway.store.reminders import announce_notices
from gateway.store.writer import Writer

log = logging.getLogger(__name__)

#: after midnight, so that a certification due yesterday is already expired
RUN_AT = time(0, 1)
#: when the store could not be read: try again this soon
RETRY = timedelta(hours=1)


def next_run(now: datetime, zone: ZoneInfo) -> datetime:
    """The next ``RUN_AT`` in ``zone`` after ``now`` (a DST change shifts the day, not the hour)."""
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), RUN_AT, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), RUN_AT, tzinfo=zone)
    return candidate


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CertificationWatch:
    """Announces the certification notices at start and once a day."""

    def __init__(
        self, writer: Writer, config: Config, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self._writer = writer
        self._config = config
        self._zone = ZoneInfo(config.site.timezone)
        self._clock = clock
        #: how many notices went out, in all (a status page may show it)
        self.announced = 0

    async def announce_once(self) -> int | None:
        """Announce the notices due now; how many, or None when the store refused."""
        try:
            now = self._clock()
            found = await self._writer.write(lambda tx: announce_notices(tx, self._config, now))
        except StoreError as exc:
            log.warning("certification reminders not announced: %s", exc)
            return None
        except Exception:  # reminders must never stop the gateway: say so, try again later
            log.exception("certification reminders failed")
            return None
        self.announced += len(found)
        if found:
            log.info("certification notices announced: %d", len(found))
        return len(found)

    async def run(self) -> None:
        """Until cancelled."""
        while True:
            done = await self.announce_once()
            now = self._clock()
            wake = next_run(now, self._zone)
            if done is None:
                wake = min(wake, now + RETRY)
            await asyncio.sleep(max((wake - now).total_seconds(), 1.0))
