"""Which controls make one QC run: the levels of one instrument and test measured within the
`[[qc]] run_window_minutes` of the run's first control. Pure.

A level seen again starts a new run (a repeat after a failure is a new run, not a second value
of the old one); so does a control later than the window. Controls arrive in any grouping (one
message per level, as the Afinion sends them, or all levels in one), so the run a control joins
may have started in an earlier message: ``assign`` takes that open run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class OpenRun:
    """The newest run of an instrument's test: its key, first control's time and levels."""

    key: str
    started_at: datetime
    levels: frozenset[str]


def joins(run: OpenRun | None, level: str, at: datetime, window_minutes: int) -> bool:
    """Whether a control of ``level`` measured ``at`` belongs to ``run``."""
    if run is None or level in run.levels:
        return False
    return abs(at - run.started_at) <= timedelta(minutes=window_minutes)


def assign(
    run: OpenRun | None,
    controls: Sequence[tuple[str, datetime]],
    window_minutes: int,
    new_key: Callable[[int], str],
) -> tuple[list[str], OpenRun | None]:
    """The run key of each (level, performed at) in order, and the open run after them.
    ``new_key(i)`` names a run that starts at control ``i``."""
    keys: list[str] = []
    for index, (level, at) in enumerate(controls):
        if run is not None and joins(run, level, at, window_minutes):
            run = replace(run, levels=run.levels | {level})
        else:
            run = OpenRun(new_key(index), at, frozenset({level}))
        keys.append(run.key)
    return keys, run
