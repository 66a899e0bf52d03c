"""Qualitative controls (a positive and a negative control, a strip's reading): judged by
their expected answer, not by Westgard. Pure."""

from __future__ import annotations

from typing import Literal

QualitativeVerdict = Literal["pass", "fail"]

# the spellings instruments and people use for the two answers (nb, en, symbols)
_SYNONYMS = {
    "neg": "neg",
    "negative": "neg",
    "negativ": "neg",
    "-": "neg",
    "non-reactive": "neg",
    "nonreactive": "neg",
    "not detected": "neg",
    "ikke påvist": "neg",
    "pos": "pos",
    "positive": "pos",
    "positiv": "pos",
    "+": "pos",
    "reactive": "pos",
    "detected": "pos",
    "påvist": "pos",
}


def normalised(answer: str) -> str:
    """An answer in a comparable form: lower case, trimmed, the synonyms of neg/pos folded."""
    text = " ".join(answer.strip().lower().split())
    return _SYNONYMS.get(text, text)


def judge(value: str, expected: str) -> QualitativeVerdict:
    """pass when ``value`` is the expected answer (spelling aside), else fail."""
    return "pass" if normalised(value) == normalised(expected) else "fail"
