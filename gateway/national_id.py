"""Norwegian person identifiers (fødselsnummer, D-, H-, FH-number): classify, check, mask, OID."""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from typing import Literal

IdKind = Literal["fnr", "dnr", "hnr", "fhnr", "synthetic"]

K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)

# Remainders of the first control sum that Skatteetaten accepts for numbers issued from
# 1 January 2032 (the classic rule accepts only 0).
_K1_REMAINDERS_2032 = frozenset({0, 1, 2, 3})

_KIND_NAMES: dict[IdKind, str] = {
    "fnr": "fødselsnummer",
    "dnr": "D-number",
    "hnr": "H-number",
    "fhnr": "FH-number",
    "synthetic": "synthetic test number",
}


@dataclass(frozen=True, slots=True)
class IdCheck:
    """What a value looks like as a Norwegian person identifier, and whether it is valid.

    ``kind`` is None when the value is not even shaped like one (wrong length, not digits, a
    month or day outside every known range). ``problem`` is empty when ``valid`` and otherwise
    one plain-English sentence fragment that never repeats the number itself.
    """

    kind: IdKind | None
    valid: bool
    problem: str = ""


def control_digit(digits: str, weights: tuple[int, ...]) -> int | None:
    """The mod-11 control digit for ``digits`` under ``weights``; None when it would be 10."""
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    digit = (11 - remainder) % 11
    return None if digit == 10 else digit


def _century(individual: int, year: int) -> int | None:
    """The century (1800, 1900, 2000) the individual number implies, or None when unused."""
    if individual <= 499:
        return 1900
    if individual <= 749 and year >= 54:
        return 1800
    if year <= 39:
        return 2000
    if individual >= 900:
        return 1900
    return None


def _check_digits(digits: str, *, accept_2032_rule: bool) -> str:
    """Empty when both control digits hold, else the problem."""
    first_nine = digits[:9]
    if accept_2032_rule:
        weighted = sum(int(d) * w for d, w in zip(digits[:10], (*K1_WEIGHTS, 1), strict=True))
        if weighted % 11 not in _K1_REMAINDERS_2032:
            return "check digit 1 is wrong"
    else:
        k1 = control_digit(first_nine, K1_WEIGHTS)
        if k1 is None:
            return "check digit 1 would be 10, so no valid number starts with these nine digits"
        if int(digits[9]) != k1:
            return "check digit 1 is wrong"
    k2 = control_digit(digits[:10], K2_WEIGHTS)
    if k2 is None:
        return "check digit 2 would be 10, so no valid number starts with these ten digits"
    if int(digits[10]) != k2:
        return "check digit 2 is wrong"
    return ""


def _check_date(day: int, month: int, year: int, individual: int, *, accept_2032_rule: bool) -> str:
    """Empty when day.month.year is a real birth date for this individual number."""
    century = _century(individual, year)
    if accept_2032_rule:
        # From 2032 the individual number no longer tells the century: accept any century.
        last_day = max(calendar.monthrange(c + year, month)[1] for c in (1800, 1900, 2000))
    elif century is None:
        return f"individual number {individual:03d} is not issued for birth year ..{year:02d}"
    else:
        last_day = calendar.monthrange(century + year, month)[1]
    if not 1 <= day <= last_day:
        return f"day {day:02d} does not exist in month {month:02d} of that year"
    return ""


@functools.lru_cache(maxsize=4096)  # pure; a message's results share one patient
def classify(
    value: str, *, allow_synthetic: bool = False, accept_2032_rule: bool = False
) -> IdCheck:
    """Classify and validate a Norwegian person identifier; surrounding whitespace is ignored.

    Layout DDMMYYIIICC: birth date, individual number, two mod-11 control digits (weights
    3 7 6 1 8 9 4 5 2 and 5 4 3 2 7 6 5 4 3 2; a digit computing to 11 is 0, one computing to
    10 means no valid number exists). Kinds:

    * ``fnr`` fødselsnummer; the individual number implies the century (000-499: 1900-1999;
      500-749 with year 54-99: 1854-1899; 500-999 with year 00-39: 2000-2039; 900-999 with year
      40-99: 1940-1999), and the date is checked in that century (29 February included).
    * ``dnr`` D-number: day + 40 (41-71). ``hnr`` H-number (hjelpenummer, internal to one
      health organisation): month + 40 (41-52). Otherwise both follow the fødselsnummer rules.
    * ``fhnr`` FH-number (felles hjelpenummer, Norsk helsenett): first digit 8 or 9, the rest
      random; only the control digits are checked.
    * ``synthetic``: Skatteetaten's Tenor test numbers, month + 80 (81-92), also with day + 40
      for synthetic D-numbers. Checked like the others but valid only with ``allow_synthetic``.
      (NAV's older synthetic numbers use month + 40 and are indistinguishable from H-numbers.)

    The 2032 change: Skatteetaten issues new numbers from 1 January 2032 (to anyone, whatever
    their birth year) where the first control sum may leave remainder 0, 1, 2 or 3 instead of
    only 0 (so check digit 1 has up to four valid values; check digit 2 is unchanged), and the
    individual number no longer tells the century or sex. By default we keep the classic rule:
    both mod-11 check digits must match exactly and the century must fit. ``accept_2032_rule``
    turns on the new rule: remainders 0-3 for check digit 1, and the date is accepted if it
    exists in any century. Systems must accept both from 2032, so the default has to change
    before then.
    """
    digits = value.strip()
    if not digits:
        return IdCheck(None, False, "is empty")
    if not digits.isascii() or not digits.isdigit():
        return IdCheck(None, False, "must contain only the digits 0-9")
    if len(digits) != 11:
        return IdCheck(None, False, f"must be 11 digits, not {len(digits)}")

    day, month, year = int(digits[0:2]), int(digits[2:4]), int(digits[4:6])
    individual = int(digits[6:9])
    kind: IdKind
    if digits[0] in "89":
        kind = "fhnr"
    elif month >= 81:
        kind, month = "synthetic", month - 80
        day = day - 40 if day >= 41 else day
    elif month >= 41:
        kind, month = "hnr", month - 40
    elif day >= 41:
        kind, day = "dnr", day - 40
    else:
        kind = "fnr"
    if kind != "fhnr" and not 1 <= month <= 12:
        return IdCheck(None, False, f"digits 3-4 ({digits[2:4]}) are not a month")
    if kind == "hnr" and day >= 41:
        return IdCheck(None, False, "is marked both as a D-number (day + 40) and an H-number")

    problem = _check_digits(digits, accept_2032_rule=accept_2032_rule)
    if not problem and kind != "fhnr":
        problem = _check_date(day, month, year, individual, accept_2032_rule=accept_2032_rule)
    if problem:
        return IdCheck(kind, False, problem)
    if kind == "synthetic" and not allow_synthetic:
        return IdCheck(
            kind, False, "is a synthetic test number (month + 80), not allowed on this site"
        )
    return IdCheck(kind, True)


# The OIDs of the Norwegian identifier systems (urn:oid:2.16.578.1.12.4.1.4.x, as used by the
# Norwegian FHIR profiles); the namespaces are this gateway's HL7 namespace IDs for them.
FODSELSNUMMER_OID = "2.16.578.1.12.4.1.4.1"
D_NUMMER_OID = "2.16.578.1.12.4.1.4.2"
H_NUMMER_OID = "2.16.578.1.12.4.1.4.3"
FH_NUMMER_OID = "2.16.578.1.12.4.1.4.4"


@dataclass(frozen=True, slots=True)
class NationalIdKind:
    """Which Norwegian identifier system an 11-digit number belongs to."""

    name: str
    namespace: str
    oid: str


FODSELSNUMMER = NationalIdKind("fødselsnummer", "NO-FNR", FODSELSNUMMER_OID)
D_NUMMER = NationalIdKind("D-nummer", "NO-DNR", D_NUMMER_OID)
H_NUMMER = NationalIdKind("H-nummer", "NO-HNR", H_NUMMER_OID)
FH_NUMMER = NationalIdKind("FH-nummer", "NO-FHN", FH_NUMMER_OID)
KIND_BY_OID: dict[str, NationalIdKind] = {
    kind.oid: kind for kind in (FODSELSNUMMER, D_NUMMER, H_NUMMER, FH_NUMMER)
}
_KIND_BY_ID_KIND: dict[IdKind, NationalIdKind] = {
    "fnr": FODSELSNUMMER,
    "dnr": D_NUMMER,
    "hnr": H_NUMMER,
    "fhnr": FH_NUMMER,
}


def national_id_kind(patient_id: str) -> NationalIdKind | None:
    """The identifier system of a Norwegian person number; None when it is not shaped like one.

    Uses the shape only (``classify``): check digits are the patient-id rule's business, and a
    result whose hold was released must still be sendable. Tenor synthetic numbers (test
    environments) count as fødselsnummer, or D-nummer when day + 40.
    """
    kind = classify(patient_id, allow_synthetic=True).kind
    if kind is None:
        return None
    if kind == "synthetic":
        return D_NUMMER if patient_id.strip()[0] in "4567" else FODSELSNUMMER
    return _KIND_BY_ID_KIND[kind]


def describe(kind: IdKind | None) -> str:
    """A human name for ``kind`` ("fødselsnummer", "D-number", ...); "ID" when unknown."""
    return _KIND_NAMES[kind] if kind else "ID"


_KIND_NAMES_NB: dict[IdKind, str] = {
    "fnr": "fødselsnummer",
    "dnr": "D-nummer",
    "hnr": "H-nummer",
    "fhnr": "FH-nummer",
    "synthetic": "syntetisk testnummer",
}

#: the problems above in bokmål, for the screens (pattern on the English text -> template)
_PROBLEMS_NB: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), template)
    for pattern, template in (
        (r"is empty", "er tomt"),
        (r"must contain only the digits 0-9", "kan bare inneholde sifrene 0-9"),
        (r"must be 11 digits, not (\d+)", r"må ha 11 siffer, ikke \1"),
        (r"digits 3-4 \((\d+)\) are not a month", r"siffer 3-4 (\1) er ikke en måned"),
        (
            r"is marked both as a D-number \(day \+ 40\) and an H-number",
            "er merket både som D-nummer (dag + 40) og H-nummer",
        ),
        (r"check digit (\d) is wrong", r"kontrollsiffer \1 er feil"),
        (
            r"check digit (\d) would be 10, .*",
            r"kontrollsiffer \1 ville blitt 10, så ingen gyldige numre begynner slik",
        ),
        (
            r"individual number (\d+) is not issued for birth year \.\.(\d+)",
            r"individnummer \1 tildeles ikke for fødselsår ..\2",
        ),
        (
            r"day (\d+) does not exist in month (\d+) of that year",
            r"dag \1 finnes ikke i måned \2 det året",
        ),
        (
            r"is a synthetic test number .*",
            "er et syntetisk testnummer (måned + 80), ikke tillatt her",
        ),
    )
)


def describe_nb(kind: IdKind | None) -> str:
    """``describe`` in bokmål."""
    return _KIND_NAMES_NB[kind] if kind else "ID-nummer"


def problem_nb(problem: str) -> str:
    """A ``problem`` text of ``classify`` in bokmål (unchanged if it is not a known one)."""
    for pattern, template in _PROBLEMS_NB:
        if pattern.fullmatch(problem):
            return pattern.sub(template, problem)
    return problem


def mask(value: str) -> str:
    """Hide the personal number: ``DDMMYY*****`` for 11 digits, else a star per character.

    For logs, the CLI and hold details; the full number never goes there.
    """
    text = value.strip()
    if len(text) == 11 and text.isascii() and text.isdigit():
        return text[:6] + "*****"
    return "*" * len(text)
