"""`trygg outbox`: the LIS outbox's counts and newest messages."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from gateway.cli.common import ConfigOption, JsonFlag, console, load, open_store, print_json

app = typer.Typer(help="The LIS outbox.", no_args_is_help=True)


@app.command("status")
def outbox_status_cmd(
    config: ConfigOption,
    state: Annotated[
        str | None, typer.Option(help="Only pending, sent, acknowledged or rejected.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Newest N messages.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Show the LIS outbox: counts by state and the newest messages (--json: an array)."""
    from gateway.store.queries import outbox_messages, outbox_status

    engine = open_store(load(config))
    with engine.connect() as conn:
        data = outbox_status(conn, limit=0)
        messages = outbox_messages(conn, state=state, limit=limit)
    if as_json:
        print_json(messages)
        return
    console.print(f"Counts: {data['counts']}  oldest waiting: {data['oldest_waiting_at']}")
    table = Table("id", "control id", "state", "results", "attempts", "ack", "text")
    for m in messages:
        table.add_row(
            str(m["id"]),
            m["control_id"],
            m["state"],
            str(m["results"]),
            str(m["attempts"]),
            m["ack_code"],
            m["ack_text"],
        )
    console.print(table)
