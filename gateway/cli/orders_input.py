"""Hand-typed worklist values (`trygg orders add/cancel`): checked before they reach the store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from gateway.cli.common import err

if TYPE_CHECKING:
    from gateway.config import Config

#: widths of the `orders` and `audit` columns the hand-entered values go to
SPECIMEN_MAX = TEST_MAX = PLACER_MAX = ACTOR_MAX = 64
PATIENT_MAX = 32
#: HL7 and ASTM delimiters: the worklist answers host queries, so its values must not carry them
DELIMITERS = frozenset("|^~\\&")


def checked(value: str, name: str, max_length: int, *, required: bool = True) -> str:
    """``value`` stripped, or exit 2 naming ``name``; the value is never echoed (patient IDs)."""
    text = value.strip()
    problem = ""
    if required and not text:
        problem = "must not be empty"
    elif len(text) > max_length:
        problem = f"is longer than {max_length} characters"
    elif any(not char.isprintable() or char in DELIMITERS for char in text):
        problem = "may not contain control characters or the delimiters | ^ ~ \\ &"
    if problem:
        err.print(f"{name} {problem}", markup=False, highlight=False)
        raise typer.Exit(2)
    return text


def test_codes(values: list[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(checked(value, "TEST", TEST_MAX) for value in values or ()))


def priority_code(value: str) -> str:
    from drivers.model import PRIORITIES

    code = value.strip().upper()
    if code not in PRIORITIES:
        err.print("--priority must be S (stat), A (as soon as possible) or R (routine)")
        raise typer.Exit(2)
    return code


def note_unknown_tests(cfg: Config, codes: tuple[str, ...]) -> None:
    """A hand-typed code the site has no mapping for is most likely a typo: say so."""
    known = {test.code for test in cfg.tests}
    unknown = [code for code in codes if code not in known]
    if known and unknown:
        err.print(
            f"Note: not a test code in the config: {', '.join(unknown)}; check the spelling",
            markup=False,
            highlight=False,
        )
