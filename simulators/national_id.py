"""Made-up Norwegian national IDs for simulated patients, independent of the gateway's validator.

The gateway's ``gateway.national_id`` computes each check digit as 11 minus a weighted sum. This
module uses the other form of the same rule (Skatteetaten's description of the 11-digit number):
with the check digit weighted 1, the weighted sum of the digits up to and including it is a
multiple of 11. Two implementations that agree (a test cross-checks them) make a shared mistake
unlikely.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

#: weights of digits 1-9 and of check digit 1 (weight 1); then of digits 1-10 and check digit 2
_FIRST = (3, 7, 6, 1, 8, 9, 4, 5, 2, 1)
_SECOND = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2, 1)


def _check_digit(digits: str, weights: tuple[int, ...]) -> int | None:
    """The digit d that makes sum(weights * (digits + d)) divisible by 11, or None (no digit)."""
    for candidate in range(10):
        total = sum(w * int(c) for w, c in zip(weights, digits + str(candidate), strict=True))
        if total % 11 == 0:
            return candidate
    return None


def with_check_digits(first_nine: str) -> str | None:
    """The 11-digit number for nine leading digits, or None when no check digit fits."""
    first = _check_digit(first_nine, _FIRST)
    if first is None:
        return None
    second = _check_digit(first_nine + str(first), _SECOND)
    return None if second is None else f"{first_nine}{first}{second}"


def make_fnr(rng: random.Random, *, d_number: bool = False) -> str:
    """A valid fødselsnummer (or D-nummer: day + 40) for a random birth date 1930-2019."""
    while True:
        born = date(1930, 1, 1) + timedelta(days=rng.randrange(0, 90 * 365))
        individual = rng.randrange(0, 500) if born.year < 2000 else rng.randrange(500, 1000)
        day = born.day + (40 if d_number else 0)
        number = with_check_digits(f"{day:02d}{born:%m}{born.year % 100:02d}{individual:03d}")
        if number is not None:
            return number


def corrupt_fnr(fnr: str) -> str:
    """Break the last check digit so the gateway must hold the result."""
    return fnr[:-1] + str((int(fnr[-1]) + 1) % 10)
