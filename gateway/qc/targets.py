"""A lot's target from the lab's own values (first N, rolling), z-scores and the fixed
allowed-deviation limit: pure arithmetic on decimals."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

#: decimals kept in a computed mean and SD (enough for any analyte's unit)
_PLACES = Decimal("0.0001")


def mean_sd(values: Sequence[Decimal]) -> tuple[Decimal, Decimal]:
    """Mean and sample SD (n - 1) of at least two values; ValueError when the SD is 0."""
    if len(values) < 2:
        raise ValueError("a target needs at least two values")
    n = Decimal(len(values))
    mean = sum(values, Decimal(0)) / n
    var = sum(((v - mean) ** 2 for v in values), Decimal(0)) / (n - 1)
    sd = var.sqrt()
    if sd == 0:
        raise ValueError("the values do not vary: SD 0")
    return mean.quantize(_PLACES), sd.quantize(_PLACES)


def z_score(value: Decimal, mean: Decimal, sd: Decimal) -> Decimal:
    """(value - mean) / SD, to two decimals beyond the engine's need."""
    return ((value - mean) / sd).quantize(_PLACES)


def allowed_ok(
    value: Decimal,
    mean: Decimal,
    *,
    allowed_percent: float | None = None,
    allowed_absolute: float | None = None,
) -> bool | None:
    """Whether ``value`` is within the fixed allowed deviation from the target (Noklus,
    RiliBAeK): +-percent of the mean and/or +-an absolute amount; with both, the wider limit
    counts (as RiliBAeK does at low concentrations). None when no limit is configured."""
    limits: list[Decimal] = []
    if allowed_percent is not None:
        limits.append(abs(mean) * Decimal(str(allowed_percent)) / 100)
    if allowed_absolute is not None:
        limits.append(Decimal(str(allowed_absolute)))
    if not limits:
        return None
    return abs(value - mean) <= max(limits)
