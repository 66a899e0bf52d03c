"""A stored control value with its judgement and comments, as plain data: what the
Levey-Jennings chart, the monthly statistics and the QC report read (``gateway.store.qc_history``
fills it from qc_results, qc_evaluations and qc_comments)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class Comment:
    """A person's comment on a control point."""

    id: int
    person: str
    at: datetime
    text: str


@dataclass(frozen=True, slots=True)
class PointViolation:
    """One rule that fired when the point was judged (qc_evaluations.violations)."""

    rule: str
    kind: str  # reject | warning
    error_type: str  # random | systematic
    levels: tuple[str, ...]
    #: the qc_result ids of the points involved (the judged point among them)
    runs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """One control series: an instrument's test at one level (every lot of it)."""

    instrument_id: str
    test_code: str
    level: str


@dataclass(frozen=True, slots=True)
class QcPoint:
    """A control value as stored, with the evaluation made when it arrived (if any)."""

    qc_result_id: int
    instrument_id: str
    test_code: str
    level: str
    lot: str
    at: datetime  # aware: performed_at, or when it was stored when the analyser sent no time
    value_text: str
    unit: str
    performed_by: str
    #: accept | warning | reject | no_target | pass | fail; "" when not (yet) evaluated
    verdict: str = ""
    target_mean: float | None = None
    target_sd: float | None = None
    z: float | None = None
    violations: tuple[PointViolation, ...] = ()
    comments: tuple[Comment, ...] = ()

    @property
    def value(self) -> float | None:
        """The value as a number; None for a qualitative control ("neg") or garbage."""
        return number(self.value_text)

    @property
    def series(self) -> SeriesKey:
        return SeriesKey(self.instrument_id, self.test_code, self.level)

    @property
    def has_target(self) -> bool:
        return self.target_mean is not None and self.target_sd is not None and self.target_sd > 0


def number(text: str | None) -> float | None:
    """A stored decimal text as a float ("5,2" too, as typed in Norway); None if it is none."""
    if text is None:
        return None
    cleaned = text.strip().replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _ids(values: Iterable[Any]) -> tuple[int, ...]:
    found: list[int] = []
    for value in values:
        try:
            found.append(int(value))
        except (TypeError, ValueError):
            continue  # a run key that is not a qc_result id: nothing to mark on a chart
    return tuple(found)


def violations_from(loaded: Any) -> tuple[PointViolation, ...]:
    """The violations JSON list as stored (objects with rule, kind, error_type, levels, runs);
    entries that are not objects are skipped (a chart never fails on one odd row)."""
    if not isinstance(loaded, list):
        return ()
    found: list[PointViolation] = []
    for item in loaded:
        if not isinstance(item, Mapping) or not item.get("rule"):
            continue
        levels = item.get("levels") or ()
        runs = item.get("runs") or ()
        found.append(
            PointViolation(
                rule=str(item["rule"]),
                kind=str(item.get("kind", "")),
                error_type=str(item.get("error_type", "")),
                levels=tuple(str(level) for level in levels) if isinstance(levels, list) else (),
                runs=_ids(runs) if isinstance(runs, list) else (),
            )
        )
    return tuple(found)


def by_series(points: Sequence[QcPoint]) -> dict[SeriesKey, list[QcPoint]]:
    """Points grouped by series in the order the series first appear, each in time order."""
    grouped: dict[SeriesKey, list[QcPoint]] = {}
    for point in points:
        grouped.setdefault(point.series, []).append(point)
    for key in grouped:
        grouped[key].sort(key=lambda p: (p.at, p.qc_result_id))
    return grouped
