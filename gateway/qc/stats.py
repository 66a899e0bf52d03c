"""Monthly QC statistics per instrument, test, lot and level: n, mean, SD, CV % and bias %
against the target mean (pure: plain points in, rows out).

The choices, where practice varies:

- every numeric control value of the month counts, rejected runs included: the statistics
  describe what the instrument did (the rejected and warned values are counted beside them,
  so a reader sees how many there were); qualitative controls ("neg") have no mean and are
  left out;
- SD is the sample SD (n - 1, as Westgard and Noklus compute it); one value has none;
- CV % = SD / mean x 100; bias % = (mean - target mean) / target mean x 100, against the
  target in use at the month's last value with one (the snapshot stored with its evaluation):
  when a lot's target changed during the month, ``targets`` says how many were used;
- the month is the site's calendar month (Europe/Oslo), not UTC's.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway.qc.points import QcPoint

_EARLIEST = datetime.min.replace(tzinfo=UTC)
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True, order=True)
class Month:
    """A calendar month, as written on the report: ``2026-12``."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """``YYYY-MM``; ValueError otherwise."""
        found = _MONTH.match(text.strip())
        if found is None:
            raise ValueError(text)
        year, month = int(found.group(1)), int(found.group(2))
        if not 1 <= month <= 12 or year < 1900:
            raise ValueError(text)
        return cls(year, month)

    @classmethod
    def of(cls, moment: datetime, zone: ZoneInfo) -> Month:
        """The month ``moment`` falls in at the site."""
        local = moment.astimezone(zone)
        return cls(local.year, local.month)

    def next(self) -> Month:
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    def previous(self) -> Month:
        return Month(self.year - 1, 12) if self.month == 1 else Month(self.year, self.month - 1)

    def start(self, zone: ZoneInfo) -> datetime:
        """Midnight on the first at the site (aware)."""
        return datetime(self.year, self.month, 1, tzinfo=zone)

    def bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """[start, end) of the month at the site, as aware datetimes in ``zone``."""
        return self.start(zone), self.next().start(zone)

    def contains(self, moment: datetime, zone: ZoneInfo) -> bool:
        start, end = self.bounds(zone)
        return start <= moment < end

    def days(self, zone: ZoneInfo) -> int:
        start, end = self.bounds(zone)
        return round((end - start) / timedelta(days=1))

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True)
class MonthStats:
    """One row of the month's statistics: a lot of one level of a test on an instrument."""

    instrument_id: str
    test_code: str
    level: str
    lot: str
    unit: str
    n: int
    mean: float | None
    sd: float | None
    cv_percent: float | None
    target_mean: float | None
    target_sd: float | None
    bias_percent: float | None
    #: distinct targets (mean, SD) the month's values were judged against (> 1: it changed)
    targets: int
    warnings: int
    rejects: int
    first_at: datetime
    last_at: datetime


def sample_sd(values: list[float]) -> float | None:
    """The sample SD (n - 1); None for fewer than two values."""
    return statistics.stdev(values) if len(values) >= 2 else None


def cv_percent(mean: float | None, sd: float | None) -> float | None:
    if mean is None or sd is None or mean == 0:
        return None
    return sd / abs(mean) * 100.0


def bias_percent(mean: float | None, target: float | None) -> float | None:
    if mean is None or target is None or target == 0:
        return None
    return (mean - target) / target * 100.0


def row_for(points: list[QcPoint]) -> MonthStats:
    """The statistics of one lot of one series (``points`` share instrument, test, level, lot)."""
    first = points[0]
    ordered = sorted(points, key=lambda p: (p.at, p.qc_result_id))
    values = [v for v in (p.value for p in ordered) if v is not None]
    mean = statistics.fmean(values) if values else None
    sd = sample_sd(values)
    with_target = [p for p in ordered if p.target_mean is not None]
    target_mean = with_target[-1].target_mean if with_target else None
    target_sd = with_target[-1].target_sd if with_target else None
    return MonthStats(
        instrument_id=first.instrument_id,
        test_code=first.test_code,
        level=first.level,
        lot=first.lot,
        unit=next((p.unit for p in reversed(ordered) if p.unit), ""),
        n=len(values),
        mean=mean,
        sd=sd,
        cv_percent=cv_percent(mean, sd),
        target_mean=target_mean,
        target_sd=target_sd,
        bias_percent=bias_percent(mean, target_mean),
        targets=len({(p.target_mean, p.target_sd) for p in with_target}),
        warnings=sum(p.verdict == "warning" for p in ordered),
        rejects=sum(p.verdict == "reject" for p in ordered),
        first_at=ordered[0].at,
        last_at=ordered[-1].at,
    )


def month_stats(points: Iterable[QcPoint]) -> list[MonthStats]:
    """A row per instrument, test, level and lot of ``points`` (the caller picks the month's),
    sorted by instrument, test, level, then the lot first used. Lots with only qualitative
    values are left out."""
    grouped: dict[tuple[str, str, str, str], list[QcPoint]] = {}
    for point in points:
        key = (point.instrument_id, point.test_code, point.level, point.lot)
        grouped.setdefault(key, []).append(point)
    rows = [row_for(group) for group in grouped.values()]
    rows = [row for row in rows if row.n > 0]
    return sorted(
        rows,
        key=lambda r: (r.instrument_id, r.test_code, r.level, r.first_at or _EARLIEST, r.lot),
    )
