"""The competence CSV: BOM and ``;`` files from Excel, every problem with its line, column and
value (all of them, not the first), and a written file that reads back the same."""

from __future__ import annotations

from datetime import date

import pytest

from gateway import catalogue
from gateway.config import parse_config
from gateway.people.certification import CertStatus
from gateway.people.competence import (
    CompetenceFile,
    Vocabulary,
    format_competence,
    parse_competence,
    problem_codes,
)
from gateway.people.operators import OperatorId
from gateway.people.roles import Role

HEADER = "person,name,operator_ids,roles,task,status,certified_on,recert_due,supervisor,evidence"
GOOD = (
    f"{HEADER}\r\n"
    "bente,Bente Hansen,BH;BH@afinion-1,operator;verifier;supervisor,astm_afinion2,certified,"
    "2025-03-01,2026-12-31,,kurs 2025\r\n"
    "bente,Bente Hansen,BH@afinion-1;BH,supervisor;operator;verifier,clinitek-1,certified,"
    "2025-03-01,2026-12-31,,\r\n"
    "tone,Tone Strand,TS,operator,clinitek-1,trainee,,,bente,\r\n"
    "eva,Eva Dahl,,admin,,,,,,\r\n"
)
VOCABULARY = Vocabulary(
    instruments=frozenset({"afinion-1", "clinitek-1"}),
    drivers=frozenset({"astm_afinion2", "astm_clinitek_status"}),
    tests=frozenset({"HbA1c", "GLU", "lipids"}),
)


def problems(parsed: CompetenceFile) -> list[tuple[int, str, str, str]]:
    return [(p.line, p.column, p.code, p.value) for p in parsed.problems]


def test_a_good_file_gives_people_and_certifications() -> None:
    parsed = parse_competence(GOOD.encode(), vocabulary=VOCABULARY)
    assert parsed.ok and parsed.delimiter == ","
    people = {p.person: p for p in parsed.people}
    assert set(people) == {"bente", "tone", "eva"}
    bente = people["bente"]
    assert bente.roles == {Role.OPERATOR, Role.VERIFIER, Role.SUPERVISOR}
    assert bente.operator_ids == (OperatorId("BH"), OperatorId("BH", "afinion-1"))
    assert bente.line == 2
    assert people["eva"].roles == {Role.ADMIN} and people["eva"].operator_ids == ()
    certs = {(c.record.person, c.record.task): c for c in parsed.certifications}
    assert set(certs) == {
        ("bente", "astm_afinion2"),
        ("bente", "clinitek-1"),
        ("tone", "clinitek-1"),
    }
    first = certs["bente", "astm_afinion2"].record
    assert first.status is CertStatus.CERTIFIED
    assert (first.certified_on, first.recert_due) == (date(2025, 3, 1), date(2026, 12, 31))
    assert first.evidence == "kurs 2025"
    trainee = certs["tone", "clinitek-1"]
    assert trainee.record.supervisor == "bente" and trainee.line == 4
    assert parsed.warnings == ()  # bente is certified for clinitek-1


def test_excel_semicolon_file_with_bom_and_pipes_or_quotes_for_lists() -> None:
    text = (
        "\ufeffPERSON;Name;Roles;Operator_IDs;Task;Status;Certified_on;Recert_due;Supervisor\r\n"
        'bente;Hansen, Bente;operator|verifier;"BH;BH@afinion-1";afinion-1:HbA1c;Certified;'
        "01.03.2025;31.12.2026;\r\n"
        ";;;;;;;;\r\n"  # Excel's empty row
    )
    parsed = parse_competence(text.encode("utf-8"), vocabulary=VOCABULARY)
    assert parsed.ok, parsed.problems
    assert parsed.delimiter == ";"
    (bente,) = parsed.people
    assert bente.name == "Hansen, Bente"
    assert bente.roles == {Role.OPERATOR, Role.VERIFIER}
    assert bente.operator_ids == (OperatorId("BH"), OperatorId("BH", "afinion-1"))
    (cert,) = parsed.certifications
    assert cert.record.task == "afinion-1:HbA1c"
    assert cert.record.certified_on == date(2025, 3, 1)  # Norwegian Excel's date format


def test_excel_sep_line_is_honoured_and_counted() -> None:
    text = f"sep=;\n{HEADER.replace(',', ';')}\nbente;B;BH;operator;nowhere-9;certified;;;;\n"
    parsed = parse_competence(text, vocabulary=VOCABULARY)
    assert problems(parsed) == [(3, "task", "unknown_target", "nowhere-9")]


def test_every_problem_is_named_with_line_column_and_value() -> None:
    text = (
        f"{HEADER}\n"
        "bente,Bente,BH,operator;wizard,afinion-1,certified,2025-13-01,,,\n"  # line 2
        "tone,Tone,TS,operator,clinitek-1,trainee,,,,\n"  # 3: no supervisor
        "kari,Kari,BH,operator,afinion-1:NOPE,done,,,nobody,\n"  # 4
        "ola,Ola,OL@sysmex-9,operator,qc/afinion-1,certified,2026-05-01,2026-01-01,ola,\n"  # 5
        "tone,Tone Strand,TS,operator,clinitek-1,trainee,,,bente,\n"  # 6
        ",Nobody,,,,,,,,\n"  # 7
        "per,Per,,,,certified,,,,\n"  # 8
        "x,X,,,afinion-1,certified,,,,,extra,\n"  # 9: too many fields
        "\n"
        "y,Y,,,\n"  # 11: too few
    )
    parsed = parse_competence(text, vocabulary=VOCABULARY)
    assert not parsed.ok and parsed.people == () and parsed.certifications == ()
    assert problems(parsed) == [
        (2, "roles", "bad_role", "wizard"),
        (2, "certified_on", "bad_date", "2025-13-01"),
        (3, "supervisor", "trainee_needs_supervisor", ""),
        (4, "operator_ids", "operator_id_twice", "BH"),
        (4, "task", "unknown_test", "NOPE"),
        (4, "status", "bad_status", "done"),
        (4, "supervisor", "unknown_supervisor", "nobody"),
        (5, "operator_ids", "unknown_instrument", "sysmex-9"),
        (5, "recert_due", "due_before_certified", "2026-01-01"),
        (5, "supervisor", "own_supervisor", "ola"),
        (6, "name", "disagrees", "Tone Strand"),
        (6, "task", "duplicate_task", "clinitek-1"),
        (7, "person", "required", ""),
        (8, "status", "without_task", "certified"),
        (9, "", "field_count", "12"),
        (11, "", "field_count", "5"),
    ]
    by_code = {p.code: dict(p.params) for p in parsed.problems}
    assert by_code["operator_id_twice"] == {"other": "bente", "other_line": "2"}
    assert by_code["disagrees"] == {"person": "tone", "other_line": "3", "other_value": "Tone"}
    assert by_code["duplicate_task"] == {"other_line": "3"}


def test_header_problems_name_the_columns() -> None:
    parsed = parse_competence("person;navn;task;Task;status\nbente;x;y;z;certified\n")
    assert problems(parsed) == [
        (1, "navn", "unknown_column", "navn"),
        (1, "task", "duplicate_column", "task"),
        (1, "name", "missing_column", "name"),
        (1, "operator_ids", "missing_column", "operator_ids"),
        (1, "roles", "missing_column", "roles"),
        (1, "certified_on", "missing_column", "certified_on"),
        (1, "recert_due", "missing_column", "recert_due"),
        (1, "supervisor", "missing_column", "supervisor"),
    ]


def test_other_encodings_and_empty_files_are_refused() -> None:
    latin = f"{HEADER}\nbente,Bente Sæther,BH,operator,,,,,,\n".encode("cp1252")
    assert problems(parse_competence(latin)) == [(2, "", "not_utf8", "e6")]
    assert problems(parse_competence(b"")) == [(1, "", "empty_file", "")]
    assert problems(parse_competence("\ufeff\r\n")) == [(1, "", "empty_file", "")]


def test_a_quoted_field_over_two_lines_keeps_the_line_numbers() -> None:
    text = (
        f"{HEADER}\n"
        'bente,Bente,BH,operator,afinion-1,certified,,,,"first line\nsecond line"\n'
        "tone,Tone,TS,operator,afinion-1,trainee,,,,\n"
    )
    parsed = parse_competence(text)
    assert problems(parsed) == [(4, "supervisor", "trainee_needs_supervisor", "")]


def test_without_a_vocabulary_tasks_are_checked_for_syntax_only() -> None:
    text = f"{HEADER}\nbente,Bente,BH@any-1,operator,any-1:X,certified,,,,\n"
    assert parse_competence(text).ok
    assert not parse_competence(text, vocabulary=VOCABULARY).ok


def test_a_supervisor_may_be_a_person_already_in_the_store() -> None:
    text = f"{HEADER}\ntone,Tone,TS,operator,clinitek-1,trainee,,,bente,\n"
    assert problems(parse_competence(text)) == [(2, "supervisor", "unknown_supervisor", "bente")]
    parsed = parse_competence(text, known_people={"bente"})
    assert parsed.ok and parsed.warnings == ()  # not in the file: nothing to compare


def test_a_supervisor_not_certified_for_the_task_is_a_warning() -> None:
    text = (
        f"{HEADER}\nbente,Bente,BH,supervisor,afinion-1,certified,,,,\n"
        "tone,Tone,TS,operator,clinitek-1,trainee,,,bente,\n"
    )
    parsed = parse_competence(text)
    assert parsed.ok
    assert [(w.line, w.code, w.value) for w in parsed.warnings] == [
        (3, "supervisor_not_certified", "bente")
    ]


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_a_written_file_reads_back_the_same(delimiter: str) -> None:
    parsed = parse_competence(GOOD, vocabulary=VOCABULARY)
    text = format_competence(
        parsed.people, [c.record for c in parsed.certifications], delimiter=delimiter
    )
    again = parse_competence(text, vocabulary=VOCABULARY)
    assert again.ok and again.delimiter == delimiter
    key = lambda f: (  # noqa: E731
        sorted((p.person, p.name, p.roles, p.operator_ids) for p in f.people),
        sorted((c.record for c in f.certifications), key=lambda r: (r.person, r.task)),
    )
    assert key(again) == key(parsed)
    assert format_competence(again.people, [c.record for c in again.certifications]) == (
        format_competence(parsed.people, [c.record for c in parsed.certifications])
    )


def test_vocabulary_from_config_knows_instruments_drivers_tests_and_groups() -> None:
    config = parse_config(
        {
            "site": {"name": "t"},
            "instruments": [
                {"id": "afinion-1", "driver": "astm_afinion2", "url": "tcp-listen://127.0.0.1:1"}
            ],
            "tests": [{"code": "Chol", "group": "lipids"}],
        }
    )
    vocabulary = Vocabulary.from_config(config)
    assert vocabulary.instruments == {"afinion-1"}
    assert vocabulary.drivers == {"astm_afinion2"}
    assert vocabulary.tests == {"Chol", "lipids"}


def test_every_problem_code_has_a_text_in_both_languages() -> None:
    for lang in catalogue.LANGUAGES:
        missing = {c for c in problem_codes() if not catalogue.has(lang, f"competence.problem.{c}")}
        assert missing == set(), lang
    problem = parse_competence(f"{HEADER}\nbente,B,,wizard,,,,,,\n").problems[0]
    assert catalogue.text("en", problem.key, **problem.text_params()) == (
        "unknown role 'wizard' (known: operator, verifier, supervisor, quality_manager, admin)"
    )
