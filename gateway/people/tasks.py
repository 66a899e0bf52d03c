"""What a certification covers (a task), and how well a task matches a result.

DOMAIN rule 1: certification is per task, a task being an analysis process on one instrument
or method, or maintenance, internal QC or EQA work. Written as text (the competence CSV, the
store) a task is::

    [kind/]target[:test]

``kind`` is ``analysis`` (the default, left out), ``qc``, ``maintenance`` or ``eqa``;
``target`` is an instrument ID (``afinion-1``), a driver key (``astm_afinion2``: every
instrument of that model) or ``*``; ``test`` is a test code, a test group from ``[[tests]]``
(``group``), or ``*`` (the default). ``afinion-1:HbA1c``, ``astm_clinitek_status:*``,
``qc/afinion-1``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final


class TaskKind(enum.StrEnum):
    ANALYSIS = "analysis"
    QC = "qc"
    MAINTENANCE = "maintenance"
    EQA = "eqa"


ANY: Final = "*"
_PART = re.compile(r"^(\*|[A-Za-z0-9_.\-]+)$")
_TEST = re.compile(r"^(\*|[^\s:/;]+)$")


@dataclass(frozen=True, slots=True)
class Task:
    """A parsed task; ``str(task)`` gives it back in its canonical text form."""

    target: str
    test: str = ANY
    kind: TaskKind = TaskKind.ANALYSIS

    def __str__(self) -> str:
        prefix = "" if self.kind is TaskKind.ANALYSIS else f"{self.kind.value}/"
        suffix = "" if self.test == ANY else f":{self.test}"
        return f"{prefix}{self.target}{suffix}"


def parse_task(text: str) -> Task:
    """A task from its text; ValueError says what is wrong with it."""
    raw = text.strip()
    if not raw:
        raise ValueError("a task is empty (expected e.g. 'afinion-1:HbA1c' or 'astm_afinion2')")
    kind = TaskKind.ANALYSIS
    rest = raw
    if "/" in raw:
        head, rest = raw.split("/", 1)
        try:
            kind = TaskKind(head.strip())
        except ValueError:
            known = ", ".join(k.value for k in TaskKind)
            raise ValueError(f"task {raw!r}: unknown kind {head!r} (known: {known})") from None
    target, _, test = rest.partition(":")
    target, test = target.strip(), (test.strip() or ANY)
    if not _PART.match(target):
        raise ValueError(f"task {raw!r}: the instrument or driver {target!r} is not valid")
    if not _TEST.match(test):
        raise ValueError(f"task {raw!r}: the test or group {test!r} is not valid")
    return Task(target, test, kind)


@dataclass(frozen=True, slots=True)
class WorkItem:
    """The task a piece of work is: a result on an instrument, of a test (and its group)."""

    instrument_id: str
    driver: str
    test_code: str
    group: str = ""
    kind: TaskKind = TaskKind.ANALYSIS


def specificity(task: Task, work: WorkItem) -> int | None:
    """How specifically ``task`` covers ``work``: higher is more specific; None: not at all.

    An instrument beats its model, a model beats ``*``; a test code beats its group, a group
    beats ``*``. The most specific certification decides (a suspension on one test overrides a
    certification for the whole instrument).
    """
    if task.kind is not work.kind:
        return None
    if task.target == work.instrument_id:
        target = 2
    elif task.target == work.driver:
        target = 1
    elif task.target == ANY:
        target = 0
    else:
        return None
    if task.test == ANY:
        test = 0
    elif task.test == work.test_code:
        test = 2
    elif work.group and task.test == work.group:
        test = 1
    else:
        return None
    return target * 3 + test
