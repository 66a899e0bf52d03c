"""`trygg quarantine`: messages that could not be decoded: list, show (hexdump on --raw, logged),
replay."""

from __future__ import annotations

import dataclasses
import functools
import getpass
from typing import Annotated

import typer
from rich.table import Table

from drivers.transports import hexdump
from gateway.cli.common import ConfigOption, JsonFlag, console, err, load, open_store, print_json
from gateway.privacy import scrub, scrub_quarantine
from gateway.texts import quarantine_code, quarantine_text

app = typer.Typer(help="Messages that could not be decoded.", no_args_is_help=True)


@app.command("list")
def quarantine_list(
    config: ConfigOption,
    state: Annotated[str | None, typer.Option(help="open, replayed or discarded.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List quarantined messages with the error that stopped them."""
    from gateway.store.queries import list_quarantine

    engine = open_store(load(config))
    with engine.connect() as conn:
        rows = scrub_quarantine(list_quarantine(conn, state=state))
    if as_json:
        print_json(rows)
        return
    table = Table("id", "instrument", "received", "field", "reason", "state", "bytes")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["instrument"],
            r["received_at"],
            r["field"],
            r["reason_text"],
            r["state"],
            str(r["bytes"]),
        )
    console.print(table)


@app.command("show")
def quarantine_show(
    quarantine_id: int,
    config: ConfigOption,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Also show a hexdump of the bytes as received (logged)."),
    ] = False,
    by: Annotated[
        str | None, typer.Option("--by", help="Who looks at the raw bytes (audit log).")
    ] = None,
) -> None:
    """Show one quarantined message: the error; with --raw also the bytes as received.

    The bytes may hold names and national IDs: --raw writes an audit row (who, what, when).
    """
    from gateway.quarantine import show_raw
    from gateway.store.queries import get_quarantined
    from gateway.store.writer import run_in_transaction

    engine = open_store(load(config))
    if raw:
        actor = f"cli:{by or getpass.getuser()}"
        row = run_in_transaction(
            engine,
            functools.partial(
                show_raw,
                quarantine_id=quarantine_id,
                actor=actor,
                via="trygg quarantine show --raw",
            ),
        )
    else:
        with engine.connect() as conn:
            row = get_quarantined(conn, quarantine_id)
    if row is None:
        err.print(f"No quarantine entry {quarantine_id}")
        raise typer.Exit(1)
    console.print(
        f"[bold]#{row.id}[/] {row.instrument_id} {row.received_at.isoformat()} state={row.state}"
    )
    reason, params = quarantine_code(dataclasses.asdict(row))
    console.print(
        f"reason: {scrub(quarantine_text('en', reason, params))} ({reason})", markup=False
    )
    console.print(f"field: {row.field or '-'}\nerror: {scrub(row.error)}\n", markup=False)
    if not raw:
        console.print(f"{len(row.raw)} bytes; add --raw to see them (the look is logged)")
        return
    for line in hexdump(bytes(row.raw)):
        console.print(line, highlight=False, markup=False)


@app.command("replay")
def quarantine_replay(
    config: ConfigOption,
    quarantine_id: Annotated[int | None, typer.Argument(help="Entry to replay.")] = None,
    all_open: Annotated[bool, typer.Option("--all", help="Replay every open entry.")] = False,
    by: Annotated[str, typer.Option("--by", help="Who replays (for the audit log).")] = "cli",
) -> None:
    """Decode quarantined messages again (after a driver fix) and ingest those that now decode."""
    from gateway.quarantine import replay
    from gateway.rules import context_from_config
    from gateway.store.queries import open_quarantine_ids
    from gateway.store.writer import run_in_transaction

    cfg = load(config)
    engine = open_store(cfg)
    if all_open:
        with engine.connect() as conn:
            ids = open_quarantine_ids(conn)
    elif quarantine_id is not None:
        ids = [quarantine_id]
    else:
        err.print("Give a quarantine id or --all")
        raise typer.Exit(2)
    context = context_from_config(cfg)
    failures = 0
    for qid in ids:
        outcome = run_in_transaction(
            engine,
            functools.partial(replay, quarantine_id=qid, config=cfg, context=context, actor=by),
        )
        failures += not outcome.ok
        console.print(
            f"#{qid}: {'[green]replayed[/]' if outcome.ok else '[red]not replayed[/]'}"
            f" {outcome.detail}"
        )
    if failures:
        raise typer.Exit(1)
