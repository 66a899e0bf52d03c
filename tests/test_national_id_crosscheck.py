"""The simulators' national-ID generator and the gateway's validator, written apart, agree."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.national_id import classify
from simulators.national_id import corrupt_fnr, make_fnr, with_check_digits


def test_every_generated_number_is_valid_to_the_gateway() -> None:
    rng = random.Random(11)
    for _ in range(2000):
        fnr = make_fnr(rng)
        assert classify(fnr).valid and classify(fnr).kind == "fnr", fnr
        dnr = make_fnr(rng, d_number=True)
        assert classify(dnr).valid and classify(dnr).kind == "dnr", dnr


def test_a_corrupted_number_is_invalid_to_the_gateway() -> None:
    rng = random.Random(12)
    for _ in range(500):
        assert not classify(corrupt_fnr(make_fnr(rng))).valid


@settings(max_examples=3000)
@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_the_two_check_digit_rules_agree_on_any_eleven_digits(digits: str) -> None:
    # Only the check digits are compared: the gateway also checks the date, so its "valid"
    # implies ours; an FH-number (first digit 8 or 9) is checked on its check digits alone.
    ours = with_check_digits(digits[:9]) == digits
    if classify(digits).valid:
        assert ours
    if digits[0] in "89":
        assert classify(digits).valid == ours
