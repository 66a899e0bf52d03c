"""When a test's next controls are due (the `[[qc]] schedule`): pure, time as an argument.

What "daily" means: Noklus' advice for near-patient instruments is "kontroll hver dag
pasientprøver analyseres" (before the day's first patient sample). A run accepted on a day
therefore covers the rest of that day in the site's time zone; the next controls are due at
the next local midnight. "weekly" covers the accepted run's day and the six days after it (due
at the local midnight seven days on). "shift": ``shift_hours`` after the accepted run. The
schedules "every_n" (patient samples since the accepted run), "new_lot" (a new lot registered)
and "none" have no time: ``due_after`` is None and the count or the lot makes them due.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def _midnight_after(at: datetime, zone: ZoneInfo, days: int) -> datetime:
    local = at.astimezone(zone).date() + timedelta(days=days)
    return datetime.combine(local, time(0), tzinfo=zone).astimezone(UTC)


def due_after(
    schedule: str, accepted_at: datetime, *, zone: ZoneInfo, shift_hours: int = 8
) -> datetime | None:
    """When controls are due again after a run accepted at ``accepted_at`` (UTC); None for the
    schedules that are not time-based."""
    if schedule == "daily":
        return _midnight_after(accepted_at, zone, 1)
    if schedule == "weekly":
        return _midnight_after(accepted_at, zone, 7)
    if schedule == "shift":
        return accepted_at + timedelta(hours=shift_hours)
    return None


def count_due(patients_since: int, every_n: int) -> bool:
    """Schedule every_n: the controls are due once ``every_n`` patient samples were measured
    since the last accepted run (the next sample waits for them)."""
    return every_n > 0 and patients_since >= every_n


def is_overdue(due_at: datetime | None, at: datetime) -> bool:
    """A result (or the watcher) at ``at`` is past ``due_at`` (due exactly then counts)."""
    return due_at is not None and at >= due_at
