"""`trygg audit`: verify the tamper-evident audit chain."""

from __future__ import annotations

from dataclasses import asdict

import typer

from gateway.cli.common import ConfigOption, JsonFlag, console, load, open_store, print_json

app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@app.command("verify")
def audit_verify(config: ConfigOption, as_json: JsonFlag = False) -> None:
    """Recompute the audit hash chain; exit 1 when it is broken."""
    from gateway.store.audit import verify

    engine = open_store(load(config))
    with engine.connect() as conn:
        report = verify(conn)
    if as_json:
        print_json(asdict(report))
    elif report.ok:
        console.print(f"[green]Audit chain intact[/]: {report.rows} rows")
    else:
        console.print(
            f"[red]Audit chain BROKEN[/] at row {report.first_bad_id}: {report.problem} "
            f"({report.rows} rows read)"
        )
    if not report.ok:
        raise typer.Exit(1)
