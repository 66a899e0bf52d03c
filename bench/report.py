"""Figures: each measured value is printed once and written as one JSON line (the contract)."""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

#: the keys every JSON line carries, in this order
CONTRACT_KEYS = ("bench", "metric", "value", "unit", "peer", "peer_value", "ratio")


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured value, optionally set against a peer or ceiling measured in the same run."""

    bench: str
    metric: str
    value: float
    unit: str
    peer: str | None = None
    peer_value: float | None = None
    note: str = ""  # printed only; the JSON line keeps to the contract

    @property
    def ratio(self) -> float | None:
        if self.peer_value is None or self.peer_value == 0:
            return None
        return self.value / self.peer_value

    def as_json(self) -> dict[str, Any]:
        ratio = self.ratio
        return {
            "bench": self.bench,
            "metric": self.metric,
            "value": _round(self.value),
            "unit": self.unit,
            "peer": self.peer,
            "peer_value": None if self.peer_value is None else _round(self.peer_value),
            "ratio": None if ratio is None else round(ratio, 4),
        }


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def fmt(value: float) -> str:
    """Human-friendly number: thousands separated, few decimals."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    return f"{value:,.2f}"


class Reporter:
    """Prints figures as they are measured and appends their JSON lines to ``json_path``."""

    def __init__(self, json_path: Path | None = None, out: IO[str] | None = None) -> None:
        self._json_path = json_path
        self._out = out or sys.stdout
        self.figures: list[Figure] = []

    def say(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def emit(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        line = f"  {figure.bench:<9} {figure.metric:<34} {fmt(figure.value):>12} {figure.unit}"
        ratio = figure.ratio
        if figure.peer is not None and figure.peer_value is not None:
            line += f"   vs {figure.peer} {fmt(figure.peer_value)}"
            if ratio is not None:
                line += f" = {ratio:.2f}x"
        if figure.note:
            line += f"   ({figure.note})"
        self.say(line)
        if self._json_path is not None:
            with self._json_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(figure.as_json()) + "\n")
        return figure


def median(values: Iterable[float]) -> float:
    data = list(values)
    if not data:
        raise ValueError("no samples")
    return float(statistics.median(data))


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile (``share`` in 0..1) of the samples."""
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1))
    return float(ordered[rank])


def spread(values: Sequence[float]) -> str:
    """'n=5, min..max' for the printed note."""
    return f"median of {len(values)}, range {fmt(min(values))}..{fmt(max(values))}"
