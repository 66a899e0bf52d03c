"""`trygg db`: the database schema."""

from __future__ import annotations

import typer

from gateway.cli.common import ConfigOption, console, load, open_store

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade(config: ConfigOption) -> None:
    """Create or migrate the database schema to the newest version."""
    cfg = load(config)
    open_store(cfg).dispose()
    console.print(f"[green]Database is up to date[/]: {cfg.store.url}")
