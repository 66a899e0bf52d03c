"""The demo's people: the GP office's competence records (``config/demo-people.csv``), imported
at the start of every run, and a one-time password for signing in as any of them.

The file is written as of ``AS_OF``; each run moves its dates by whole days so that the run
sees them as on that day: Kari's Afinion certification is always expired (her Afinion results
are held), Bente's Sysmex recertification is always three weeks away (a reminder), Morten's new
urine-strip certification always six weeks without work (an inactivity warning). The records
are imported through the same plan and apply as ``trygg operators import``, audited as
``demo``. Every demo person gets the same password for this run, printed on the screen
(``secrets``, never stored in clear): the demo's people are fictional and the demo listens on
this PC only.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final

from gateway.catalogue import FALLBACK_LANGUAGE, text
from gateway.config import Config
from gateway.demo.options import DEMO_PEOPLE
from gateway.errors import ConfigError
from gateway.people.competence import CompetenceFile, Vocabulary, parse_competence
from gateway.people.passwords import password_problem
from gateway.store.competence import ImportPlan, apply_import, person_ids
from gateway.store.signin import set_password_hash
from gateway.store.writer import Tx

#: the day the file's dates are written for
AS_OF: Final = date(2026, 12, 7)
ACTOR: Final = "demo"


@dataclass(frozen=True, slots=True)
class DemoPeople:
    """What the run imported: the plan, and the people who may sign in."""

    plan: ImportPlan
    people: tuple[str, ...]


def shifted(parsed: CompetenceFile, today: date) -> CompetenceFile:
    """``parsed`` with every date moved by ``today - AS_OF`` days."""
    delta = today - AS_OF

    def move(day: date | None) -> date | None:
        return day + delta if day is not None else None

    certifications = tuple(
        dataclasses.replace(
            entry,
            record=dataclasses.replace(
                entry.record,
                certified_on=move(entry.record.certified_on),
                recert_due=move(entry.record.recert_due),
            ),
        )
        for entry in parsed.certifications
    )
    return dataclasses.replace(parsed, certifications=certifications)


def people_in(data: bytes) -> tuple[str, ...]:
    """The person IDs the file names (as far as it parses: the import checks it fully)."""
    return tuple(entry.person for entry in parse_competence(data).people)


def one_time_password(people: Iterable[str]) -> str:
    """16 random URL-safe characters that pass the password rules for each of ``people``."""
    names = list(people)
    while True:
        password = secrets.token_urlsafe(12)
        if all(password_problem(password, person) is None for person in names):
            return password


def import_demo_people(
    tx: Tx, config: Config, data: bytes, today: date, password_hash: str
) -> DemoPeople:
    """A writer job: import the demo's records (dates moved to ``today``) and give every
    person in them the run's password (hashed beforehand, once, outside the writer).
    ``ConfigError`` lists the file's problems."""
    parsed = parse_competence(
        data, vocabulary=Vocabulary.from_config(config), known_people=person_ids(tx.conn)
    )
    if not parsed.ok:
        problems = "; ".join(
            f"{text(FALLBACK_LANGUAGE, 'competence.where', **p.text_params())}: "
            f"{text(FALLBACK_LANGUAGE, p.key, **p.text_params())}"
            for p in parsed.problems
        )
        raise ConfigError(f"the demo's people file does not fit this config: {problems}")
    plan = apply_import(tx, shifted(parsed, today), actor=ACTOR, source="demo-people.csv")
    people = tuple(entry.person for entry in parsed.people)
    for person in people:
        set_password_hash(tx, person, password_hash, actor=ACTOR)
    return DemoPeople(plan, people)


def read_people(path: Path = DEMO_PEOPLE) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the demo's people file {path}: {exc.strerror}") from exc


__all__ = [
    "AS_OF",
    "DEMO_PEOPLE",
    "DemoPeople",
    "import_demo_people",
    "one_time_password",
    "people_in",
    "read_people",
    "shifted",
]
