"""Norwegian person identifiers (fødselsnummer, D-, H-, FH-number): classify, check, mask, OID."""

from __future__ import annotations

import calendar
import functools
from dataclasses import dataclass, field
from typing import Literal

from gateway.catalogue import FALLBACK_LANGUAGE, text

IdKind = Literal["fnr", "dnr", "hnr", "fhnr", "synthetic"]

K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)

# Remainders of the first control sum that Skatteetaten accepts for numbers issued from
# 1 January 2032 (the classic rule accepts only 0).
_K1_REMAINDERS_2032 = frozenset({0, 1, 2, 3})

#: a problem's code (``id_problem.<code>`` in the catalogues) and its parameters
Problem = tuple[str, tuple[tuple[str, str], ...]]
#: every problem code ``classify`` reports
PROBLEMS = (
    "empty",
    "not_digits",
    "wrong_length",
    "not_a_month",
    "d_and_h",
    "check_digit_wrong",
    "check_digit_ten",
    "individual_not_issued",
    "no_such_day",
    "synthetic_not_allowed",
)


@dataclass(frozen=True, slots=True)
class IdCheck:
    """What a value looks like as a Norwegian person identifier, and whether it is valid.

    ``kind`` is None when the value is not even shaped like one (wrong length, not digits, a
    month or day outside every known range). ``problem`` is empty when ``valid`` and otherwise
    one plain-English sentence fragment that never repeats the number itself; ``code`` and
    ``params`` say the same for the catalogues (``id_problem.<code>``), so screens can show it
    in the reader's language.
    """

    kind: IdKind | None
    valid: bool
    problem: str = ""
    code: str = field(default="", compare=False)
    params: tuple[tuple[str, str], ...] = field(default=(), compare=False)


def _problem(code: str, **params: object) -> Problem:
    return code, tuple((key, str(value)) for key, value in params.items())


def _invalid(kind: IdKind | None, problem: Problem) -> IdCheck:
    code, params = problem
    english = text(FALLBACK_LANGUAGE, f"id_problem.{code}", **dict(params))
    return IdCheck(kind, False, english, code, params)


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


def _check_digits(digits: str, *, accept_2032_rule: bool) -> Problem | None:
    """None when both control digits hold, else the problem."""
    first_nine = digits[:9]
    if accept_2032_rule:
        weighted = sum(int(d) * w for d, w in zip(digits[:10], (*K1_WEIGHTS, 1), strict=True))
        if weighted % 11 not in _K1_REMAINDERS_2032:
            return _problem("check_digit_wrong", digit=1)
    else:
        k1 = control_digit(first_nine, K1_WEIGHTS)
        if k1 is None:
            return _problem("check_digit_ten", digit=1)
        if int(digits[9]) != k1:
            return _problem("check_digit_wrong", digit=1)
    k2 = control_digit(digits[:10], K2_WEIGHTS)
    if k2 is None:
        return _problem("check_digit_ten", digit=2)
    if int(digits[10]) != k2:
        return _problem("check_digit_wrong", digit=2)
    return None


def _check_date(
    day: int, month: int, year: int, individual: int, *, accept_2032_rule: bool
) -> Problem | None:
    """None when day.month.year is a real birth date for this individual number."""
    century = _century(individual, year)
    if accept_2032_rule:
        # From 2032 the individual number no longer tells the century: accept any century.
        last_day = max(calendar.monthrange(c + year, month)[1] for c in (1800, 1900, 2000))
    elif century is None:
        return _problem("individual_not_issued", individual=f"{individual:03d}", year=f"{year:02d}")
    else:
        last_day = calendar.monthrange(century + year, month)[1]
    if not 1 <= day <= last_day:
        return _problem("no_such_day", day=f"{day:02d}", month=f"{month:02d}")
    return None


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
        return _invalid(None, _problem("empty"))
    if not digits.isascii() or not digits.isdigit():
        return _invalid(None, _problem("not_digits"))
    if len(digits) != 11:
        return _invalid(None, _problem("wrong_length", length=len(digits)))

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
        return _invalid(None, _problem("not_a_month", digits=digits[2:4]))
    if kind == "hnr" and day >= 41:
        return _invalid(None, _problem("d_and_h"))

    problem = _check_digits(digits, accept_2032_rule=accept_2032_rule)
    if problem is None and kind != "fhnr":
        problem = _check_date(day, month, year, individual, accept_2032_rule=accept_2032_rule)
    if problem is not None:
        return _invalid(kind, problem)
    if kind == "synthetic" and not allow_synthetic:
        return _invalid(kind, _problem("synthetic_not_allowed"))
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


def mask(value: str) -> str:
    """Hide the personal number: ``DDMMYY*****`` for 11 digits, else a star per character.

    For logs, the CLI and hold details; the full number never goes there.
    """
    text = value.strip()
    if len(text) == 11 and text.isascii() and text.isdigit():
        return text[:6] + "*****"
    return "*" * len(text)
