"""The competence records' CSV (Kompetanseportalen's export): parse it into typed records, and
write it back in the same format.

The portal has no API; its exports are CSV, often saved again from Excel. The format:

* UTF-8, with or without a byte-order mark (Excel's "CSV UTF-8" writes one). Other encodings
  are refused with the line of the first bad byte: re-save the file as "CSV UTF-8".
* The delimiter is ``,`` or ``;`` (Norwegian Excel writes ``;``), told from the header line;
  an Excel ``sep=;`` first line is honoured and skipped.
* One header line; column names case-insensitive, in any order: ``person`` (the stable person
  ID), ``name``, ``operator_ids``, ``roles``, ``task``, ``status``, ``certified_on``,
  ``recert_due``, ``supervisor`` and, optional, ``evidence``. An unknown column is an error.
* Lists (``operator_ids``, ``roles``) are separated by ``;`` in a ``,`` file. In a ``;`` file
  write them with ``|`` (``BH|BH@afinion-1``) or quote the field (``"BH;KN"``); ``|`` works in
  both. An operator ID is ``BH`` (every instrument) or ``BH@afinion-1`` (that instrument only).
* One row per person and task (``gateway.people.tasks`` syntax). A person with no task (an
  administrator) has one row with ``task`` and the columns after it empty. A person's
  ``name``, ``roles`` and ``operator_ids`` must be the same on each of their rows.
* ``status``: trainee, certified, expired or suspended. Dates ISO (``2026-12-07``) or as
  Norwegian Excel shows them (``07.12.2026``); empty allowed. A trainee needs a supervisor; a
  supervisor is a person in the file or already in the store, never the person themselves.
* Blank rows are skipped; line numbers count the file's physical lines (the header is line 1).
* Given the site's config (``Vocabulary``), a task's instrument or driver, its test code or
  test group, and an operator ID's instrument must be configured ones.

Every problem names its line, its column and the value found, and parsing goes on after one:
the caller gets them all at once. Texts are the catalogue's ``competence.problem.<code>``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Final

from gateway.people.certification import CertificationRecord, CertStatus
from gateway.people.operators import OperatorId, parse_operator_id
from gateway.people.roles import ROLES, Role, format_roles
from gateway.people.tasks import ANY, parse_task

if TYPE_CHECKING:
    from _csv import Reader as _Reader

    from gateway.config import Config

COLUMNS: Final = (
    "person",
    "name",
    "operator_ids",
    "roles",
    "task",
    "status",
    "certified_on",
    "recert_due",
    "supervisor",
    "evidence",
)
REQUIRED: Final = frozenset(COLUMNS) - {"evidence"}
#: the columns that describe the certification of a row (empty when ``task`` is)
TASK_COLUMNS: Final = ("status", "certified_on", "recert_due", "supervisor", "evidence")
DELIMITERS: Final = (",", ";")
#: the list separator that goes with each delimiter when writing
LIST_SEPARATOR: Final = {",": ";", ";": "|"}
_LIST_SPLIT = re.compile(r"[;|]")
_PERSON = re.compile(r"^[^\s;,|]+$")
_NORWEGIAN_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SEP_LINE = re.compile(r"^sep=(.)\s*$", re.IGNORECASE)
#: the store's column widths (gateway.store.tables)
MAX_LENGTH: Final = {"person": 64, "name": 255, "operator_ids": 64, "task": 128, "supervisor": 64}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the file: where (line, column), what (``code``) and the value."""

    line: int
    column: str
    code: str
    value: str = ""
    #: extra placeholders of the text (``known``, ``other_line``, ...)
    params: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """The catalogue key of this problem's text."""
        return f"competence.problem.{self.code}"

    def text_params(self) -> dict[str, object]:
        """Everything the text may name: line, column, value and the extra parameters."""
        return {
            "line": self.line,
            "column": self.column or "–",
            "value": self.value,
            **dict(self.params),
        }


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """What the site's config knows, for checking tasks and operator IDs against it."""

    instruments: frozenset[str]
    drivers: frozenset[str]
    #: test codes and test groups of ``[[tests]]``
    tests: frozenset[str]

    @classmethod
    def from_config(cls, config: Config) -> Vocabulary:
        return cls(
            instruments=frozenset(i.id for i in config.instruments),
            drivers=frozenset(i.driver for i in config.instruments),
            tests=frozenset(t.code for t in config.tests)
            | {t.group for t in config.tests if t.group},
        )


@dataclass(frozen=True, slots=True)
class PersonEntry:
    """A person as the file states them (the same on each of their rows), and their first line."""

    person: str
    name: str
    roles: frozenset[Role]
    operator_ids: tuple[OperatorId, ...]
    line: int


@dataclass(frozen=True, slots=True)
class CertificationEntry:
    record: CertificationRecord
    line: int


@dataclass(frozen=True, slots=True)
class CompetenceFile:
    """What a file holds. Records only when ``problems`` is empty (a partial file is no file)."""

    people: tuple[PersonEntry, ...] = ()
    certifications: tuple[CertificationEntry, ...] = ()
    problems: tuple[Problem, ...] = ()
    #: worth saying, not wrong (a supervisor not certified for the task in this file)
    warnings: tuple[Problem, ...] = ()
    delimiter: str = ","

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(slots=True)
class _Row:
    line: int
    cells: dict[str, str]


@dataclass(slots=True)
class _Parser:
    vocabulary: Vocabulary | None
    known_people: Collection[str]
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def bad(self, line: int, column: str, code: str, value: str = "", **params: object) -> None:
        self.problems.append(
            Problem(line, column, code, value, tuple((k, str(v)) for k, v in params.items()))
        )


def parse_competence(
    data: bytes | str,
    *,
    vocabulary: Vocabulary | None = None,
    known_people: Collection[str] = (),
) -> CompetenceFile:
    """Parse a competence CSV (module docstring); ``known_people``: person IDs in the store
    (a supervisor may be one of them); ``vocabulary``: check tasks and operator IDs against
    the site's config (None: syntax only)."""
    parser = _Parser(vocabulary, frozenset(known_people))
    text = _decode(data, parser)
    if text is None:
        return CompetenceFile(problems=tuple(parser.problems))
    first_line = 1
    lines = text.splitlines(keepends=True)
    forced = None
    if lines and (sep := _SEP_LINE.match(lines[0])) and sep.group(1) in DELIMITERS:
        forced, first_line = sep.group(1), 2
        text = "".join(lines[1:])
    if not text.strip():
        parser.bad(first_line, "", "empty_file")
        return CompetenceFile(problems=tuple(parser.problems))
    header_text = text.splitlines()[0]
    delimiter = forced or _delimiter(header_text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    try:
        rows = _rows(reader, parser, first_line)
    except csv.Error as exc:
        parser.bad(first_line + reader.line_num - 1, "", "bad_csv", str(exc))
        return CompetenceFile(problems=tuple(parser.problems), delimiter=delimiter)
    if rows is None:
        return CompetenceFile(problems=tuple(parser.problems), delimiter=delimiter)
    people, certs = _records(rows, parser)
    if parser.problems:
        return CompetenceFile(
            problems=tuple(
                sorted(parser.problems, key=lambda p: (p.line, COLUMNS_ORDER.get(p.column, 99)))
            ),
            warnings=tuple(parser.warnings),
            delimiter=delimiter,
        )
    return CompetenceFile(
        people=tuple(people),
        certifications=tuple(certs),
        warnings=tuple(parser.warnings),
        delimiter=delimiter,
    )


COLUMNS_ORDER: Final = {name: index for index, name in enumerate(COLUMNS)}


def _decode(data: bytes | str, parser: _Parser) -> str | None:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        parser.bad(line, "", "not_utf8", data[exc.start : exc.start + 1].hex(), byte=exc.start)
        return None


def _delimiter(header: str) -> str:
    """The delimiter under which the header names the most known columns (``,`` on a tie)."""

    def known(delimiter: str) -> int:
        cells = next(csv.reader([header], delimiter=delimiter), [])
        return sum(cell.strip().lower() in COLUMNS for cell in cells)

    return max(DELIMITERS, key=lambda d: (known(d), header.count(d), d == ","))


def _rows(reader: _Reader, parser: _Parser, first_line: int) -> list[_Row] | None:
    """The data rows as column -> cell; None when the header is unusable."""
    header = [cell.strip().lower() for cell in next(reader)]
    header_line = first_line
    bad = False
    seen: set[str] = set()
    known = ", ".join(COLUMNS)
    for name in header:
        if not name:
            continue  # an empty header cell (Excel's trailing ";"): its column must stay empty
        if name not in COLUMNS:
            parser.bad(header_line, name, "unknown_column", name, known=known)
            bad = True
        elif name in seen:
            parser.bad(header_line, name, "duplicate_column", name)
            bad = True
        seen.add(name)
    for name in sorted(REQUIRED - seen, key=COLUMNS.index):
        parser.bad(header_line, name, "missing_column", name)
        bad = True
    if bad:
        return None
    rows: list[_Row] = []
    previous_end = reader.line_num
    for cells in reader:
        # a quoted field may span lines: a row starts on the line after the previous one ended
        line = first_line + previous_end
        previous_end = reader.line_num
        values = [cell.strip() for cell in cells]
        if not any(values):
            continue  # a blank row (or one Excel filled with delimiters)
        if len(values) < len(header) or any(values[len(header) :]):
            parser.bad(line, "", "field_count", str(len(values)), expected=len(header))
            continue
        row: dict[str, str] = {}
        for index, name in enumerate(header):
            if name:
                row[name] = values[index]
            elif values[index]:
                parser.bad(line, f"#{index + 1}", "unnamed_column", values[index])
        row.setdefault("evidence", "")
        rows.append(_Row(line, row))
    return rows


def _records(
    rows: list[_Row], parser: _Parser
) -> tuple[list[PersonEntry], list[CertificationEntry]]:
    file_people = {row.cells["person"] for row in rows if row.cells["person"]}
    people: dict[str, tuple[PersonEntry, bool]] = {}
    certs: list[CertificationEntry] = []
    tasks_seen: dict[tuple[str, str], int] = {}
    holders: dict[OperatorId, tuple[str, int]] = {}
    for row in rows:
        person = _person(row, parser)
        if person:
            entry, whole = _person_entry(row, person, parser)
            first = people.get(person)
            if first is None:
                people[person] = (entry, whole)
                _claim_operator_ids(entry, holders, parser)
            elif whole and first[1]:
                _agree(first[0], entry, parser)
        cert = _certification(row, person, file_people, parser)
        task_key = _task_key(row.cells["task"])
        if not person or not task_key:
            continue
        key = (person, task_key)
        if key in tasks_seen:
            parser.bad(
                row.line, "task", "duplicate_task", row.cells["task"], other_line=tasks_seen[key]
            )
            continue
        tasks_seen[key] = row.line
        if cert is not None:
            certs.append(CertificationEntry(cert, row.line))
    _supervisor_warnings(certs, parser)
    return [entry for entry, _whole in people.values()], certs


def _task_key(text: str) -> str:
    """A row's task as compared for duplicates: canonical when it parses, else as written."""
    try:
        return str(parse_task(text))
    except ValueError:
        return text.strip()


def _too_long(row: _Row, column: str, value: str, parser: _Parser) -> bool:
    limit = MAX_LENGTH.get(column)
    if limit is not None and len(value) > limit:
        parser.bad(row.line, column, "too_long", value, limit=limit)
        return True
    return False


def _person(row: _Row, parser: _Parser) -> str:
    person = row.cells["person"]
    if not person:
        parser.bad(row.line, "person", "required")
        return ""
    if _too_long(row, "person", person, parser):
        return ""
    if not _PERSON.match(person):
        parser.bad(row.line, "person", "bad_person", person)
        return ""
    return person


def _items(text: str) -> list[str]:
    return [item.strip() for item in _LIST_SPLIT.split(text) if item.strip()]


def _person_entry(row: _Row, person: str, parser: _Parser) -> tuple[PersonEntry, bool]:
    """The row's person, from the parts that are valid, and whether all of them were."""
    ok = True
    name = row.cells["name"]
    if not name:
        parser.bad(row.line, "name", "required")
        ok = False
    elif _too_long(row, "name", name, parser):
        ok = False
    roles: set[Role] = set()
    for item in _items(row.cells["roles"]):
        try:
            roles.add(Role(item.lower()))
        except ValueError:
            parser.bad(row.line, "roles", "bad_role", item, known=", ".join(r.value for r in ROLES))
            ok = False
    ids: set[OperatorId] = set()
    for item in _items(row.cells["operator_ids"]):
        op_id = _operator_id(row, item, parser)
        if op_id is None:
            ok = False
        else:
            ids.add(op_id)
    return PersonEntry(person, name, frozenset(roles), tuple(sorted(ids)), row.line), ok


def _operator_id(row: _Row, item: str, parser: _Parser) -> OperatorId | None:
    try:
        op_id = parse_operator_id(item)
    except ValueError:
        parser.bad(row.line, "operator_ids", "bad_operator_id", item)
        return None
    if any(ch.isspace() for ch in str(op_id)) or "@" in op_id.instrument_id:
        parser.bad(row.line, "operator_ids", "bad_operator_id", item)
        return None
    if len(op_id.operator_id) > 64 or len(op_id.instrument_id) > 64:
        parser.bad(row.line, "operator_ids", "too_long", item, limit=64)
        return None
    vocabulary = parser.vocabulary
    if (
        vocabulary is not None
        and op_id.instrument_id
        and op_id.instrument_id not in vocabulary.instruments
    ):
        parser.bad(
            row.line,
            "operator_ids",
            "unknown_instrument",
            op_id.instrument_id,
            known=", ".join(sorted(vocabulary.instruments)) or "–",
        )
        return None
    return op_id


def _claim_operator_ids(
    entry: PersonEntry, holders: dict[OperatorId, tuple[str, int]], parser: _Parser
) -> None:
    for op_id in entry.operator_ids:
        other = holders.get(op_id)
        if other is not None and other[0] != entry.person:
            parser.bad(
                entry.line,
                "operator_ids",
                "operator_id_twice",
                str(op_id),
                other=other[0],
                other_line=other[1],
            )
        else:
            holders[op_id] = (entry.person, entry.line)


def _agree(first: PersonEntry, entry: PersonEntry, parser: _Parser) -> None:
    """A person's name, roles and operator IDs are the same on each of their rows."""
    pairs: tuple[tuple[str, str, str], ...] = (
        ("name", first.name, entry.name),
        ("roles", format_roles(first.roles), format_roles(entry.roles)),
        (
            "operator_ids",
            ";".join(str(o) for o in first.operator_ids),
            ";".join(str(o) for o in entry.operator_ids),
        ),
    )
    for column, was, now in pairs:
        if was != now:
            parser.bad(
                entry.line,
                column,
                "disagrees",
                now,
                person=entry.person,
                other_line=first.line,
                other_value=was,
            )


def _date(row: _Row, column: str, parser: _Parser) -> tuple[bool, date | None]:
    text = row.cells[column]
    if not text:
        return True, None
    try:
        if _ISO_DATE.match(text):
            return True, date.fromisoformat(text)
        if found := _NORWEGIAN_DATE.match(text):
            day, month, year = (int(g) for g in found.groups())
            return True, date(year, month, day)
    except ValueError:
        pass
    parser.bad(row.line, column, "bad_date", text)
    return False, None


def _certification(
    row: _Row, person: str, file_people: Collection[str], parser: _Parser
) -> CertificationRecord | None:
    cells = row.cells
    if not cells["task"]:
        for column in TASK_COLUMNS:
            if cells[column]:
                parser.bad(row.line, column, "without_task", cells[column])
        return None
    ok = True
    task_text = _task(row, parser)
    ok &= task_text is not None
    status: CertStatus | None = None
    if not cells["status"]:
        parser.bad(row.line, "status", "required")
        ok = False
    else:
        try:
            status = CertStatus(cells["status"].lower())
        except ValueError:
            known = ", ".join(s.value for s in CertStatus)
            parser.bad(row.line, "status", "bad_status", cells["status"], known=known)
            ok = False
    good_on, certified_on = _date(row, "certified_on", parser)
    good_due, recert_due = _date(row, "recert_due", parser)
    ok &= good_on and good_due
    if certified_on and recert_due and recert_due < certified_on:
        parser.bad(
            row.line,
            "recert_due",
            "due_before_certified",
            cells["recert_due"],
            certified_on=certified_on.isoformat(),
        )
        ok = False
    supervisor = cells["supervisor"]
    if supervisor:
        if supervisor == person:
            parser.bad(row.line, "supervisor", "own_supervisor", supervisor)
            ok = False
        elif supervisor not in file_people and supervisor not in parser.known_people:
            parser.bad(row.line, "supervisor", "unknown_supervisor", supervisor)
            ok = False
    elif status is CertStatus.TRAINEE:
        parser.bad(row.line, "supervisor", "trainee_needs_supervisor")
        ok = False
    if not ok or task_text is None or status is None:
        return None
    return CertificationRecord(
        person=person,
        task=task_text,
        status=status,
        certified_on=certified_on,
        recert_due=recert_due,
        supervisor=supervisor,
        evidence=cells["evidence"],
    )


def _task(row: _Row, parser: _Parser) -> str | None:
    """The task's canonical text, checked against the vocabulary when there is one."""
    raw = row.cells["task"]
    try:
        task = parse_task(raw)
    except ValueError as exc:
        parser.bad(row.line, "task", "bad_task", raw, detail=str(exc))
        return None
    vocabulary = parser.vocabulary
    ok = True
    if vocabulary is not None:
        if task.target != ANY and task.target not in vocabulary.instruments | vocabulary.drivers:
            known = ", ".join(sorted(vocabulary.instruments | vocabulary.drivers)) or "–"
            parser.bad(row.line, "task", "unknown_target", task.target, known=known)
            ok = False
        if task.test != ANY and task.test not in vocabulary.tests:
            parser.bad(row.line, "task", "unknown_test", task.test)
            ok = False
    text = str(task)
    if ok and _too_long(row, "task", text, parser):
        ok = False
    return text if ok else None


def _supervisor_warnings(certs: list[CertificationEntry], parser: _Parser) -> None:
    """A trainee's supervisor in this file should be certified for the same task (rule 2):
    worth a warning; the co-signature checks it when it matters."""
    certified = {
        (c.record.person, c.record.task) for c in certs if c.record.status is CertStatus.CERTIFIED
    }
    in_file = {c.record.person for c in certs}
    for entry in certs:
        record = entry.record
        if (
            record.status is CertStatus.TRAINEE
            and record.supervisor in in_file
            and (record.supervisor, record.task) not in certified
        ):
            parser.warnings.append(
                Problem(
                    entry.line,
                    "supervisor",
                    "supervisor_not_certified",
                    record.supervisor,
                    (("task", record.task),),
                )
            )


# --- writing ---------------------------------------------------------------------------------


def format_competence(
    people: Iterable[PersonEntry],
    certifications: Iterable[CertificationRecord],
    *,
    delimiter: str = ",",
) -> str:
    """The records as a competence CSV that ``parse_competence`` reads back unchanged: one row
    per person and task (a person without any: one row with an empty task), ISO dates, lists
    joined with ``;`` (``|`` in a ``;`` file), rows by person then task, CRLF line ends."""
    if delimiter not in DELIMITERS:
        raise ValueError(f"delimiter must be one of {DELIMITERS}")
    separator = LIST_SEPARATOR[delimiter]
    by_person: dict[str, list[CertificationRecord]] = {}
    for cert in certifications:
        by_person.setdefault(cert.person, []).append(cert)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for entry in sorted(people, key=lambda p: p.person):
        base = [
            entry.person,
            entry.name,
            separator.join(str(o) for o in sorted(entry.operator_ids)),
            format_roles(entry.roles).replace(";", separator),
        ]
        certs = sorted(by_person.get(entry.person, []), key=lambda c: c.task)
        if not certs:
            writer.writerow([*base, "", "", "", "", "", ""])
        for cert in certs:
            writer.writerow(
                [
                    *base,
                    cert.task,
                    cert.status.value,
                    cert.certified_on.isoformat() if cert.certified_on else "",
                    cert.recert_due.isoformat() if cert.recert_due else "",
                    cert.supervisor,
                    cert.evidence,
                ]
            )
    return out.getvalue()


def problem_codes() -> frozenset[str]:
    """Every problem code this module reports (each has a catalogue text)."""
    return _CODES


_CODES: Final = frozenset(
    {
        "not_utf8",
        "empty_file",
        "bad_csv",
        "unknown_column",
        "duplicate_column",
        "missing_column",
        "unnamed_column",
        "field_count",
        "required",
        "too_long",
        "bad_person",
        "bad_role",
        "bad_operator_id",
        "unknown_instrument",
        "operator_id_twice",
        "disagrees",
        "bad_date",
        "due_before_certified",
        "own_supervisor",
        "unknown_supervisor",
        "trainee_needs_supervisor",
        "without_task",
        "bad_status",
        "bad_task",
        "unknown_target",
        "unknown_test",
        "duplicate_task",
        "supervisor_not_certified",
    }
)

__all__ = [
    "COLUMNS",
    "CertificationEntry",
    "CompetenceFile",
    "PersonEntry",
    "Problem",
    "Vocabulary",
    "format_competence",
    "parse_competence",
]
