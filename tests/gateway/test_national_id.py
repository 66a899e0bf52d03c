"""Tests for Norwegian person identifier classification, validation and masking."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.national_id import IdCheck, IdKind, classify, mask


def _solve(digits: str, weights: tuple[int, ...]) -> int | None:
    """The digit d with sum(weights * digits) + d == 0 (mod 11), found by trying all ten.

    Written independently of ``gateway.national_id.control_digit`` on purpose.
    """
    total = sum(int(d) * w for d, w in zip(digits, weights, strict=True))
    matches = [d for d in range(10) if (total + d) % 11 == 0]
    return matches[0] if matches else None


def _complete(nine: str) -> str | None:
    """Append both control digits to nine digits, or None when either would be 10."""
    k1 = _solve(nine, (3, 7, 6, 1, 8, 9, 4, 5, 2))
    if k1 is None:
        return None
    k2 = _solve(nine + str(k1), (5, 4, 3, 2, 7, 6, 5, 4, 3, 2))
    return None if k2 is None else f"{nine}{k1}{k2}"


# Worked by hand; the first is fnrinfo.no's worked example, the next two Skatteetaten's
# examples of numbers issued in 2032 that also pass the classic rule.
VALID: dict[str, IdKind] = {
    "31129956715": "fnr",  # 31.12.1899, individual 567
    "02013299997": "fnr",  # 02.01.2032, individual 999
    "30108299920": "fnr",  # 30.10.1982, individual 999
    "01019012480": "fnr",  # 01.01.1990
    "15078512323": "fnr",
    "29029612410": "fnr",  # 29.02.1996, a leap year
    "29020052331": "fnr",  # 29.02.2000 (individual 523 -> 2000s), a leap year
    "29020092392": "fnr",  # 29.02.2000 (individual 923, year 00 -> 2000s)
    "41019012393": "dnr",  # day + 40
    "45126010110": "dnr",
    "01419012382": "hnr",  # month + 40
    "81048512313": "fhnr",  # FH-number: first digit 8, the rest random
    "90000012385": "fhnr",
}


@pytest.mark.parametrize(("number", "kind"), sorted(VALID.items()))
def test_known_valid_numbers(number: str, kind: IdKind) -> None:
    assert _complete(number[:9]) == number
    assert classify(number) == IdCheck(kind, True, "")


@pytest.mark.parametrize("number", sorted(VALID))
def test_surrounding_whitespace_is_ignored(number: str) -> None:
    assert classify(f"  {number}\t").valid


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("29020012380", "day 29 does not exist in month 02 of that year"),  # 1900: not leap
        ("29029712350", "day 29 does not exist in month 02 of that year"),  # 1997
        ("29025460055", "day 29 does not exist in month 02 of that year"),  # 1854
        ("15075580034", "individual number 800 is not issued for birth year ..55"),
        ("15074560080", "individual number 600 is not issued for birth year ..45"),
        ("31129956716", "check digit 2 is wrong"),
        ("31129956705", "check digit 1 is wrong"),
    ],
)
def test_invalid_numbers_name_the_problem(number: str, problem: str) -> None:
    check = classify(number)
    assert not check.valid
    assert check.problem == problem


def test_check_digit_that_would_be_ten() -> None:
    nine = next(
        f"010190{i:03d}"
        for i in range(1000)
        if _solve(f"010190{i:03d}", (3, 7, 6, 1, 8, 9, 4, 5, 2)) is None
    )
    check = classify(nine + "00")
    assert not check.valid
    assert check.problem.startswith("check digit 1 would be 10")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("3112995671", "must be 11 digits, not 10"),
        ("311299567150", "must be 11 digits, not 12"),
        ("311299-56715", "must contain only the digits 0-9"),
        ("3112995671X", "must contain only the digits 0-9"),
        ("311299５6715", "must contain only the digits 0-9"),  # full-width digit
        ("12345678911", "digits 3-4 (34) are not a month"),
        ("01009012345", "digits 3-4 (00) are not a month"),
        ("01939012345", "digits 3-4 (93) are not a month"),
    ],
)
def test_malformed_values_are_rejected_without_a_kind(value: str, problem: str) -> None:
    assert classify(value) == IdCheck(None, False, problem)


def test_problem_never_repeats_the_number() -> None:
    for number in ("31129956716", "29020012380", "15075580034"):
        assert number not in classify(number).problem
        assert number[6:] not in classify(number).problem


def test_d_and_h_together_are_rejected() -> None:
    number = _complete("414190123")
    assert number is not None
    check = classify(number)
    assert check.kind is None and not check.valid


def test_synthetic_numbers_need_permission() -> None:
    number = _complete("018190123")  # Tenor: month + 80
    assert number == "01819012365"
    refused = classify(number)
    assert refused.kind == "synthetic" and not refused.valid
    assert "synthetic" in refused.problem
    assert classify(number, allow_synthetic=True) == IdCheck("synthetic", True, "")
    synthetic_d = _complete("418190123")  # synthetic D-number: day + 40 and month + 80
    assert synthetic_d is not None
    assert classify(synthetic_d, allow_synthetic=True) == IdCheck("synthetic", True, "")


def test_synthetic_numbers_are_still_checked() -> None:
    check = classify("01819012366", allow_synthetic=True)
    assert check == IdCheck("synthetic", False, "check digit 2 is wrong")


def test_2032_rule_accepts_more_first_check_digits() -> None:
    # Skatteetaten's second example: remainder 1 for the first control sum.
    assert classify("30108299939").problem == "check digit 1 is wrong"
    assert classify("30108299939", accept_2032_rule=True).valid
    # The individual number no longer gives the century: 123 meant 1900 (not a leap year),
    # but a new number may belong to someone born 29.02.2000.
    assert not classify("29020012380").valid
    assert classify("29020012380", accept_2032_rule=True).valid
    # A date that exists in no century stays wrong.
    assert not classify("29025460055", accept_2032_rule=True).valid
    # Remainder 4 is still wrong.
    nine = "301082999"
    total = sum(int(d) * w for d, w in zip(nine, (3, 7, 6, 1, 8, 9, 4, 5, 2), strict=True))
    k1 = (4 - total) % 11
    assert k1 < 10
    k2 = _solve(nine + str(k1), (5, 4, 3, 2, 7, 6, 5, 4, 3, 2))
    assert k2 is not None
    check = classify(f"{nine}{k1}{k2}", accept_2032_rule=True)
    assert check.problem == "check digit 1 is wrong"


def _individuals(year: int) -> st.SearchStrategy[int]:
    if year < 1900:
        return st.integers(500, 749)
    if year >= 2000:
        return st.integers(500, 999)
    if year >= 1940:
        return st.one_of(st.integers(0, 499), st.integers(900, 999))
    return st.integers(0, 499)


_BUILT_KINDS: tuple[IdKind, ...] = ("fnr", "dnr", "hnr")


@st.composite
def valid_numbers(draw: st.DrawFn) -> tuple[str, IdKind]:
    """A valid fødselsnummer, D- or H-number built from a real birth date, and its kind."""
    born = draw(st.dates(date(1854, 1, 1), date(2039, 12, 31)))
    individual = draw(_individuals(born.year))
    kind = draw(st.sampled_from(_BUILT_KINDS))
    day = born.day + (40 if kind == "dnr" else 0)
    month = born.month + (40 if kind == "hnr" else 0)
    number = _complete(f"{day:02d}{month:02d}{born.year % 100:02d}{individual:03d}")
    assume(number is not None)
    assert number is not None
    return number, kind


@given(valid_numbers())
def test_generated_numbers_are_valid_under_both_rules(case: tuple[str, IdKind]) -> None:
    number, kind = case
    assert classify(number) == IdCheck(kind, True, "")
    assert classify(number, accept_2032_rule=True).valid


@given(valid_numbers(), st.integers(0, 10), st.integers(1, 9), st.booleans())
def test_every_single_digit_corruption_is_rejected(
    case: tuple[str, IdKind], position: int, shift: int, new_rule: bool
) -> None:
    number, _ = case
    wrong = str((int(number[position]) + shift) % 10)
    corrupted = number[:position] + wrong + number[position + 1 :]
    assert not classify(corrupted, accept_2032_rule=new_rule).valid


@given(st.text(max_size=14))
def test_any_text_is_classified_without_error(value: str) -> None:
    check = classify(value)
    assert check.valid == (check.problem == "")
    assert re.search(r"\d{4}", check.problem) is None  # never echoes a run of the number


def test_mask_shows_only_the_birth_date_part() -> None:
    assert mask("31129956715") == "311299*****"
    assert mask(" 31129956715 ") == "311299*****"
    assert mask("3112995671") == "**********"
    assert mask("Ola Nordmann") == "************"
    assert mask("") == ""


@given(st.text(max_size=20))
def test_mask_never_reveals_the_personal_number(value: str) -> None:
    masked = mask(value)
    text = value.strip()
    assert len(masked) == len(text)
    assert masked[6:] == "*" * len(masked[6:])
