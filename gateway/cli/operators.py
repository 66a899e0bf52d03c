"""`trygg operators`: the competence records: import (with a dry run), export, list, recertify.

The file format is ``gateway.people.competence``'s; import and export use the same one, so an
exported file imported again changes nothing. Problems are listed with their line and column,
and the command exits 2 without importing anything.
"""

from __future__ import annotations

import contextlib
import getpass
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from gateway.catalogue import FALLBACK_LANGUAGE, text
from gateway.cli.common import (
    ConfigOption,
    JsonFlag,
    console,
    err,
    load,
    open_store,
    print_json,
    say,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from gateway.config import Config
    from gateway.people.competence import Problem
    from gateway.store.competence import CertificationPlan, ImportPlan, PersonPlan

app = typer.Typer(
    help="Operators and their certifications (the competence records).", no_args_is_help=True
)

ByOption = Annotated[
    str | None,
    typer.Option("--by", help="Who runs this (the audit log's actor); default: your OS user."),
]


@contextlib.contextmanager
def store(config: Config) -> Iterator[Engine]:
    """The site's store, its connections closed when the command is done."""
    engine = open_store(config)
    try:
        yield engine
    finally:
        engine.dispose()


def actor_of(by: str | None) -> str:
    return (by or getpass.getuser()).strip()[:64] or "cli"


def problem_text(problem: Problem, lang: str = FALLBACK_LANGUAGE) -> str:
    """``line 4, column task: unknown instrument or driver 'x' (...)``."""
    params = problem.text_params()
    return f"{text(lang, 'competence.where', **params)}: {text(lang, problem.key, **params)}"


def _problems_json(problems: tuple[Problem, ...]) -> list[dict[str, Any]]:
    return [
        {
            "line": p.line,
            "column": p.column,
            "code": p.code,
            "value": p.value,
            "text": text(FALLBACK_LANGUAGE, p.key, **p.text_params()),
        }
        for p in problems
    ]


def _refuse(source: str, problems: tuple[Problem, ...], as_json: bool) -> typer.Exit:
    if as_json:
        print_json({"ok": False, "problems": _problems_json(problems)})
    else:
        err.print(
            f"[red]Error:[/] {say('cli.operators.refused', file=source, n=len(problems))}",
            soft_wrap=True,
        )
        for problem in problems:
            err.print(f"  {escape(problem_text(problem))}", soft_wrap=True)
    return typer.Exit(2)


def _changes_table(plan: ImportPlan) -> Table | None:
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0))
    for key in ("line", "what", "change", "fields"):
        table.add_column(say(f"cli.operators.col.{key}"), overflow="fold")
    rows = 0
    items: list[tuple[PersonPlan | CertificationPlan, str]] = [
        *((p, p.person) for p in plan.people),
        *((c, f"{c.person} {c.task}") for c in plan.certifications),
    ]
    for item, what in items:
        if item.change.value == "unchanged":
            continue
        rows += 1
        fields = "; ".join(f"{f.field}: {f.before or '–'} → {f.after or '–'}" for f in item.fields)
        table.add_row(
            str(item.line),
            escape(what),
            say(f"cli.operators.change.{item.change.value}"),
            escape(fields),
        )
    return table if rows else None


def _print_plan(plan: ImportPlan, source: str, *, dry_run: bool) -> None:
    counts = plan.counts()
    people, certs = counts["people"], counts["certifications"]
    table = _changes_table(plan)
    if table is not None:
        console.print(table)
    key = "cli.operators.dry_run" if dry_run else "cli.operators.imported"
    if not plan.changes:
        key = "cli.operators.dry_run_nothing" if dry_run else "cli.operators.nothing_changed"
    console.print(
        say(
            key,
            file=source,
            people_created=people["created"],
            people_changed=people["changed"],
            people_unchanged=people["unchanged"],
            certs_created=certs["created"],
            certs_changed=certs["changed"],
            certs_unchanged=certs["unchanged"],
        ),
        soft_wrap=True,
    )
    if plan.people_not_in_file:
        console.print(
            say("cli.operators.people_not_in_file", people=", ".join(plan.people_not_in_file)),
            soft_wrap=True,
        )
    if plan.certifications_not_in_file:
        items = ", ".join(f"{p} {t}" for p, t in plan.certifications_not_in_file)
        console.print(say("cli.operators.certs_not_in_file", items=items), soft_wrap=True)


@app.command("import")
def operators_import(
    file: Annotated[Path, typer.Argument(metavar="FILE.csv", help="The competence CSV.")],
    config: ConfigOption,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
    by: ByOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Import the competence records (Kompetanseportalen's CSV): people, roles, operator IDs
    and certifications. Nothing is deleted; the same file again changes nothing."""
    from gateway.people.competence import Vocabulary, parse_competence
    from gateway.store.competence import ImportRefused, apply_import, person_ids, plan_import
    from gateway.store.writer import run_in_transaction

    cfg = load(config)
    try:
        data = file.read_bytes()
    except OSError as exc:
        err.print(
            f"[red]Error:[/] {say('cli.operators.cannot_read', file=file, reason=exc)}",
            soft_wrap=True,
        )
        raise typer.Exit(2) from exc
    with store(cfg) as engine:
        with engine.connect() as conn:
            parsed = parse_competence(
                data, vocabulary=Vocabulary.from_config(cfg), known_people=person_ids(conn)
            )
            if not parsed.ok:
                raise _refuse(str(file), parsed.problems, as_json)
            if dry_run:
                plan = plan_import(conn, parsed)
        for warning in parsed.warnings:
            err.print(f"[yellow]{say('cli.operators.warning')}[/] {escape(problem_text(warning))}")
        if not dry_run:
            actor = actor_of(by)
            try:
                plan = run_in_transaction(
                    engine, lambda tx: apply_import(tx, parsed, actor=actor, source=file.name)
                )
            except ImportRefused as refused:
                raise _refuse(str(file), refused.problems, as_json) from refused
    if not plan.ok:
        raise _refuse(str(file), plan.problems, as_json)
    if as_json:
        print_json({"ok": True, "dry_run": dry_run, **plan.as_dict()})
        return
    _print_plan(plan, str(file), dry_run=dry_run)


@app.command("export")
def operators_export(
    config: ConfigOption,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the CSV here (UTF-8 with BOM, for Excel)."),
    ] = None,
    delimiter: Annotated[
        str, typer.Option(help="',' (lists joined by ';') or ';' (lists joined by '|').")
    ] = ",",
) -> None:
    """Export the competence records in the import's CSV format (to stdout, or --out)."""
    import sys

    from gateway.people.competence import DELIMITERS, format_competence
    from gateway.store.competence import export_records

    if delimiter not in DELIMITERS:
        err.print(f"[red]Error:[/] {say('cli.operators.bad_delimiter', value=delimiter)}")
        raise typer.Exit(2)
    with store(load(config)) as engine, engine.connect() as conn:
        people, certs = export_records(conn)
    data = format_competence(people, certs, delimiter=delimiter)
    if out is None:
        sys.stdout.write(data)
        return
    # Excel opens a UTF-8 CSV with æøå right only when it starts with a byte-order mark
    out.write_bytes(data.encode("utf-8-sig"))
    err.print(
        say("cli.operators.exported", people=len(people), certifications=len(certs), path=out)
    )


@app.command("list")
def operators_list(config: ConfigOption, as_json: JsonFlag = False) -> None:
    """People with their roles, operator IDs and certifications, each certification's status
    as it is today (a passed recertification date counts as expired)."""
    from gateway.store.competence import roster

    cfg = load(config)
    zone = ZoneInfo(cfg.site.timezone)
    with store(cfg) as engine, engine.connect() as conn:
        people = roster(conn, datetime.now(UTC), zone)
    if as_json:
        print_json(people)
        return
    if not people:
        console.print(say("cli.operators.none"))
        return
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0))
    for key in ("person", "name", "roles", "operator_ids", "certifications"):
        table.add_column(say(f"cli.operators.col.{key}"), overflow="fold")
    for person in people:
        certs = [_cert_line(c) for c in person["certifications"]]  # type: ignore[attr-defined]
        table.add_row(
            escape(str(person["person"]))
            + ("" if person["active"] else f" ({say('cli.operators.disabled')})"),
            escape(str(person["name"])),
            ", ".join(person["roles"]),  # type: ignore[arg-type]
            escape(", ".join(person["operator_ids"])),  # type: ignore[arg-type]
            "\n".join(certs) or "–",
        )
    console.print(table)


def _cert_line(cert: dict[str, Any]) -> str:
    status = cert["effective_status"] or cert["status"]
    shown = say(f"cert_status.{status}")
    if cert["effective_status"] and cert["effective_status"] != cert["status"]:
        shown = say(
            "cli.operators.status_now", now=shown, stored=say(f"cert_status.{cert['status']}")
        )
    due = say("cli.operators.due", date=cert["recert_due"]) if cert["recert_due"] else ""
    colour = {"certified": "green", "trainee": "yellow"}.get(status, "red")
    return f"{escape(cert['task'])}: [{colour}]{shown}[/]{(' ' + due) if due else ''}"


@app.command("recertify")
def operators_recertify(
    person: Annotated[str, typer.Argument(metavar="PERSON", help="The person's ID.")],
    task: Annotated[str, typer.Argument(metavar="TASK", help="The task, as listed.")],
    config: ConfigOption,
    outcome: Annotated[
        str,
        typer.Option(
            "--outcome",
            help="confirmed: the procedures are reviewed and understood; unclear: something "
            "is lacking (the quality manager and the supervisor follow up).",
        ),
    ],
    note: Annotated[
        str, typer.Option("--note", help="What was reviewed, or what is unclear.")
    ] = "",
    by: ByOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Record a recertification (DOMAIN rule 10), signed by PERSON with their password (an
    electronic signature; scripts set TRYGG_PASSWORD): confirmed moves the due date on by
    [people] recert_interval_days; unclear records a deviation for the nearest manager.
    --by, when given, must name PERSON: one signs only one's own recertification."""
    from gateway.cli.common import check_signature
    from gateway.store.people_signing import sign_recertification
    from gateway.store.recertification import Outcome, RecertifyRefused
    from gateway.store.writer import run_in_transaction

    if outcome not in tuple(Outcome):
        err.print(f"[red]Error:[/] {say('cli.operators.bad_outcome', value=outcome)}")
        raise typer.Exit(2)
    if by is not None and by != person:
        err.print(f"[red]Error:[/] {say('cli.operators.recertify_own', person=person)}")
        raise typer.Exit(2)
    cfg = load(config)
    actor = person
    zone = ZoneInfo(cfg.site.timezone)
    with store(cfg) as engine:
        check_signature(cfg, engine, person)
        try:
            signed = run_in_transaction(
                engine,
                lambda tx: sign_recertification(
                    tx,
                    person,
                    task,
                    outcome,
                    note,
                    actor=actor,
                    interval_days=cfg.people.recert_interval_days,
                    zone=zone,
                ),
            )
        except RecertifyRefused as refused:
            err.print(f"[red]Error:[/] {say(refused.key, person=person, task=task)}")
            raise typer.Exit(2) from refused
    done = signed.done
    if as_json:
        print_json(
            {
                "signature": signed.signature_id,
                "person": done.person,
                "task": done.task,
                "outcome": done.outcome.value,
                "status": done.status.value,
                "recert_due": done.due.isoformat() if done.due else "",
                "recert_due_before": done.due_before.isoformat() if done.due_before else "",
                "deviation": done.deviation_id,
            }
        )
        return
    due = done.due.isoformat() if done.due else "–"
    if done.outcome is Outcome.CONFIRMED:
        message = say(
            "cli.operators.recertified",
            person=done.person,
            task=done.task,
            due=due,
            was=done.due_before.isoformat() if done.due_before else "–",
        )
    else:
        message = say(
            "cli.operators.recertify_unclear",
            person=done.person,
            task=done.task,
            deviation=done.deviation_id,
            supervisor=done.supervisor or "–",
            due=due,
        )
    console.print(message, soft_wrap=True)
