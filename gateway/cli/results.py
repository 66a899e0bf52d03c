"""`trygg results`: list, show and release patient results."""

from __future__ import annotations

import functools
from typing import Annotated, Any

import typer
from rich.table import Table

from gateway.cli.common import ConfigOption, JsonFlag, console, err, load, open_store, print_json
from gateway.privacy import scrub_result

app = typer.Typer(help="Patient results.", no_args_is_help=True)


@app.command("list")
def results_list(
    config: ConfigOption,
    state: Annotated[str | None, typer.Option(help="Only this state.")] = None,
    instrument: Annotated[str | None, typer.Option(help="Only this instrument.")] = None,
    limit: Annotated[int, typer.Option(help="Newest N.")] = 50,
    show_patient: Annotated[
        bool, typer.Option("--show-patient-id", help="Show full patient IDs.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List recent results with their state and holds (patient IDs masked, also in free text)."""
    from gateway.catalogue import has, text
    from gateway.model import HoldReason
    from gateway.store.queries import list_results

    def reason_label(hold: dict[str, Any]) -> str:  # a code this version does not know: as is
        if hold["reason"] == HoldReason.TEST_MESSAGE:
            return str(hold["detail"])  # the whole reason: which field said test, and the fate
        key = f"reason.{hold['reason']}"
        return text("en", key) if has("en", key) else str(hold["reason"])

    engine = open_store(load(config))
    with engine.connect() as conn:
        rows = list_results(
            conn, state=state, instrument=instrument, limit=limit, show_patient=show_patient
        )
    if not show_patient:  # asked for patient IDs: free text as sent too
        rows = [scrub_result(r) for r in rows]
    if as_json:
        print_json(rows)
        return
    table = Table(
        "id", "instrument", "test", "value", "unit", "state", "holds", "operator", "patient"
    )
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["instrument"],
            r["test"],
            r["value"],
            r["unit"],
            r["state"],
            ", ".join(reason_label(h) for h in r["holds"] if not h["released"]),
            r["operator"],
            r["patient_id"],
        )
    console.print(table)


@app.command("show")
def results_show(
    result_id: int,
    config: ConfigOption,
    show_patient: Annotated[bool, typer.Option("--show-patient-id")] = False,
) -> None:
    """Show one result with its holds and outbox messages (JSON)."""
    from gateway.store.queries import get_result

    engine = open_store(load(config))
    with engine.connect() as conn:
        data = get_result(conn, result_id, show_patient=show_patient)
    if data is None:
        err.print(f"No result {result_id}")
        raise typer.Exit(1)
    if not show_patient:
        data = scrub_result(data)
    print_json(data)


@app.command("release")
def results_release(
    result_id: int,
    config: ConfigOption,
    by: Annotated[str, typer.Option("--by", help="Your name or user ID (audit log).")],
    note: Annotated[str, typer.Option("--note", help="Why it may go out.")] = "",
) -> None:
    """Release a held result after checking it; it is then queued for the LIS."""
    from gateway.holds import release
    from gateway.store.writer import run_in_transaction

    engine = open_store(load(config))
    outcome = run_in_transaction(
        engine, functools.partial(release, result_id=result_id, actor=by, note=note)
    )
    if not outcome.released:
        err.print(f"[red]Not released[/]: result {result_id}: {outcome.detail}")
        raise typer.Exit(1)
    console.print(f"[green]Result {result_id}[/]: {outcome.detail}; queued for the LIS")
