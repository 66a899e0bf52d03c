"""The one free-text scrub: 11-digit numbers passing the mod-11 checks are masked, nothing else."""

from __future__ import annotations

import pytest

from gateway.national_id import classify
from gateway.privacy import scrub

FNR = "15037212382"  # a valid fødselsnummer
DNR = "55037212376"  # a valid D-number
LOT = "15076500566"  # check digit 2 fails: a lot number, not a person


def test_the_examples_are_what_they_claim() -> None:
    assert classify(FNR).valid and classify(DNR).valid and not classify(LOT).valid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"pasient {FNR} i fritekst", "pasient 150372***** i fritekst"),
        (f"D-nr:{DNR}.", "D-nr:550372*****."),
        (f"{FNR[:6]} {FNR[6:]}", "150372 *****"),  # written with a space
        (f"{FNR[:6]}.{FNR[6:]}", "150372.*****"),  # or a dot
        (f"{FNR[:6]}\u00a0{FNR[6:]}", "150372\u00a0*****"),  # or a no-break space
        (f"PID|1||{FNR}^^^NO-FNR", "PID|1||150372*****^^^NO-FNR"),
    ],
)
def test_valid_national_ids_are_masked(text: str, expected: str) -> None:
    assert scrub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        f"reagens lot {LOT}",  # fails mod-11
        "serienummer 12345678901",  # no month 34
        f"{FNR}7",  # twelve digits: not a national ID
        f"0.{FNR}",  # the decimals of a number
        f"{FNR},5",
        "",
    ],
)
def test_other_numbers_are_left_alone(text: str) -> None:
    assert scrub(text) == text
