"""`trygg deviations`: the deviation register (avvik) from the command line.

``list`` and ``show`` read (texts scrubbed of national IDs); ``add``, ``update``, ``close``,
``comment`` and ``reopen`` write as ``--user`` after checking that person's password
(``TRYGG_PASSWORD`` for scripts), with the same store commands and role checks as the web
(``gateway.store.deviations``); closing is an electronic signature. ``export`` writes the
practice meeting's or the annual review's file. Exit 0 when done, 1 when refused, 2 for bad
input.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from gateway.cli.common import ConfigOption, JsonFlag, console, err, load, open_store, print_json
from gateway.privacy import scrub_deviation, scrub_deviations

if TYPE_CHECKING:
    from gateway.store.deviations import Outcome
    from gateway.store.writer import Tx

app = typer.Typer(help="The deviation register (avvik).", no_args_is_help=True)

UserOption = Annotated[str, typer.Option("--user", help="Who acts (person ID); asks the password.")]


@app.command("list")
def deviations_list(
    config: ConfigOption,
    state: Annotated[str, typer.Option(help="open, in_progress or closed.")] = "",
    category: Annotated[str, typer.Option(help="equipment, it, hms, clinical, quality.")] = "",
    instrument: Annotated[str, typer.Option(help="Only this instrument.")] = "",
    limit: Annotated[int, typer.Option(help="Newest N.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List deviations, newest first."""
    from gateway.store.deviations import Filters, list_deviations

    engine = open_store(load(config))
    filters = Filters(state=state, category=category, instrument=instrument)
    with engine.connect() as conn:
        rows = scrub_deviations(list_deviations(conn, filters, limit=limit))
    if as_json:
        print_json(rows)
        return
    table = Table("id", "created", "kind", "category", "instrument", "summary", "state")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["created_at"][:16],
            r["kind"],
            r["category"],
            r["instrument"],
            escape(r["summary"]),
            r["state"],
        )
    console.print(table)


@app.command("show")
def deviations_show(deviation_id: int, config: ConfigOption) -> None:
    """One deviation with its history (JSON)."""
    from gateway.store.deviations import get_deviation

    engine = open_store(load(config))
    with engine.connect() as conn:
        found = get_deviation(conn, deviation_id)
    if found is None:
        err.print(f"No deviation {deviation_id}")
        raise typer.Exit(1)
    print_json(scrub_deviation(found))


Command = Callable[["Tx", str], "Outcome"]


def _write(config: Path, user: str, command: Command) -> None:
    """Check ``user``'s password, run ``command`` in a transaction, print its outcome."""
    from gateway.cli.common import check_signature
    from gateway.store.writer import run_in_transaction

    cfg = load(config)
    engine = open_store(cfg)
    check_signature(cfg, engine, user)
    outcome = run_in_transaction(engine, lambda tx: command(tx, f"cli:{user}"))
    message = escape(outcome.message("en"))
    if outcome.done:
        console.print(f"[green]Done[/]: {message}", soft_wrap=True)
        return
    err.print(f"[red]Refused[/]: {message}", soft_wrap=True)
    raise typer.Exit(2 if outcome.bad_input else 1)


@app.command("add")
def deviations_add(
    config: ConfigOption,
    user: UserOption,
    summary: Annotated[str, typer.Option("--summary", help="What happened, one line.")],
    category: Annotated[
        str, typer.Option(help="equipment, it, hms, clinical or quality.")
    ] = "quality",
    detail: Annotated[str, typer.Option(help="The description.")] = "",
    immediate_action: Annotated[
        str, typer.Option("--immediate-action", help="What was done at once.")
    ] = "",
    instrument: Annotated[str, typer.Option(help="The instrument it concerns.")] = "",
    result: Annotated[int | None, typer.Option("--result", help="A result's ID.")] = None,
) -> None:
    """Report a deviation by hand (never a national ID in the text: refer to the result)."""
    from gateway.store.deviations import report

    _write(
        config,
        user,
        lambda tx, actor: report(
            tx,
            user,
            category=category,
            summary=summary,
            detail=detail,
            immediate_action=immediate_action,
            instrument_id=instrument,
            result_id=result,
            actor=actor,
        ),
    )


@app.command("update")
def deviations_update(
    deviation_id: int,
    config: ConfigOption,
    user: UserOption,
    cause: Annotated[str | None, typer.Option(help="The cause.")] = None,
    corrective_action: Annotated[
        str | None, typer.Option("--corrective-action", help="The corrective action.")
    ] = None,
    no_action_needed: Annotated[
        bool,
        typer.Option(
            "--no-action-needed", help="No corrective action needed: --corrective-action says why."
        ),
    ] = False,
    immediate_action: Annotated[
        str | None, typer.Option("--immediate-action", help="The immediate action.")
    ] = None,
    category: Annotated[str | None, typer.Option(help="Route it to another category.")] = None,
) -> None:
    """Record the immediate action, the cause, the corrective action or the category."""
    from gateway.cli.common import say
    from gateway.store.deviations import record_handling, set_immediate_action

    if cause is None and corrective_action is None and immediate_action is None and not category:
        err.print(say("cli.deviations.nothing"))
        raise typer.Exit(2)

    def command(tx: Tx, actor: str) -> Outcome:
        outcome = None
        if immediate_action is not None:
            outcome = set_immediate_action(tx, deviation_id, user, immediate_action, actor=actor)
            if not outcome.done:
                return outcome
        if cause is None and corrective_action is None and category is None:
            assert outcome is not None
            return outcome
        return record_handling(
            tx,
            deviation_id,
            user,
            cause=cause,
            corrective_action=corrective_action,
            corrective_action_needed=not no_action_needed,
            category=category,
            actor=actor,
        )

    _write(config, user, command)


@app.command("comment")
def deviations_comment(
    deviation_id: int,
    config: ConfigOption,
    user: UserOption,
    text: Annotated[str, typer.Option("--text", help="The comment.")],
) -> None:
    """Add a comment to a deviation's history."""
    from gateway.store.deviations import add_comment

    _write(config, user, lambda tx, actor: add_comment(tx, deviation_id, user, text, actor=actor))


@app.command("close")
def deviations_close(
    deviation_id: int,
    config: ConfigOption,
    user: UserOption,
    note: Annotated[str, typer.Option(help="A note.")] = "",
) -> None:
    """Close a deviation (supervisor or quality manager; needs a cause and a corrective
    action). An electronic signature: meaning, time and person are recorded."""
    from gateway.store.deviations import close_signed

    _write(
        config,
        user,
        lambda tx, actor: close_signed(tx, deviation_id, user, note=note, actor=actor),
    )


@app.command("reopen")
def deviations_reopen(
    deviation_id: int,
    config: ConfigOption,
    user: UserOption,
    reason: Annotated[str, typer.Option(help="Why (required).")],
) -> None:
    """Reopen a closed deviation (the quality manager)."""
    from gateway.deviations.workflow import DevState
    from gateway.store.deviations import move

    _write(
        config,
        user,
        lambda tx, actor: move(
            tx, deviation_id, user, DevState.IN_PROGRESS, reason=reason, actor=actor
        ),
    )


@app.command("export")
def deviations_export(
    config: ConfigOption,
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write.")],
    first: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD).")] = "",
    last: Annotated[str, typer.Option("--to", help="Last day (YYYY-MM-DD).")] = "",
    year: Annotated[str, typer.Option(help="A whole year (the annual review).")] = "",
    fmt: Annotated[str, typer.Option("--format", help="csv or xlsx.")] = "xlsx",
) -> None:
    """Export a period's (the practice meeting) or a year's (the annual quality review)
    deviations: the columns are in README; national IDs in the texts are masked."""
    from zoneinfo import ZoneInfo

    from gateway.cli.common import say
    from gateway.deviations import export
    from gateway.store.deviations import export_rows

    if fmt not in ("csv", "xlsx"):
        err.print("--format: csv or xlsx")
        raise typer.Exit(2)
    cfg = load(config)
    zone = ZoneInfo(cfg.site.timezone)
    try:
        period = export.period_of(
            first, last, year, today=datetime.now(UTC).astimezone(zone).date()
        )
    except export.PeriodError as exc:
        err.print(f"[red]Error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    since, until = period.bounds(zone)
    engine = open_store(cfg)
    with engine.connect() as conn:
        rows: list[dict[str, Any]] = scrub_deviations(export_rows(conn, since, until))
    body = (
        export.to_csv(rows, zone)
        if fmt == "csv"
        else export.to_xlsx(rows, zone, period=period, site=cfg.site.name)
    )
    output.write_bytes(body)
    console.print(say("cli.deviations.written", n=len(rows), path=str(output)))
