"""`trygg db`: the database schema, its check and its backup."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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

app = typer.Typer(help="Database schema, check and backup.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade(config: ConfigOption) -> None:
    """Create or migrate the database schema to the newest version (never on a store that
    fails its check)."""
    from gateway.store.check import require_healthy

    cfg = load(config)
    require_healthy(cfg.store.url)
    open_store(cfg).dispose()
    console.print(f"[green]Database is up to date[/]: {cfg.store.url}")


@app.command("check")
def db_check(config: ConfigOption, as_json: JsonFlag = False) -> None:
    """Check the store: PRAGMA quick_check on SQLite (reads every page), the connection on
    PostgreSQL. Exit 1 when it fails. Safe while the gateway runs."""
    from gateway.store.check import check_store, findings

    report = check_store(load(config).store.url)
    if as_json:
        print_json(report.as_dict())
    elif report.ok:
        console.print(
            say(
                "cli.db_check_ok",
                store=report.store,
                method=report.method,
                seconds=f"{report.seconds:.2f}",
            ),
            soft_wrap=True,
        )
    else:
        err.print(say("cli.db_check_failed", **findings(report)), soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


@app.command("backup")
def db_backup(
    path: Annotated[Path, typer.Argument(help="The backup file to write (must not exist).")],
    config: ConfigOption,
) -> None:
    """Copy a SQLite store to PATH with SQLite's online backup API (safe while the gateway
    runs), then check the copy. On PostgreSQL, says how to use pg_dump and exits 1."""
    from sqlalchemy.engine import make_url

    from gateway.store.check import BackupError, backend_of, backup_sqlite

    url = load(config).store.url
    if backend_of(url) != "sqlite":
        # pg_dump takes a libpq URL: without SQLAlchemy's "+psycopg" and without the password
        libpq = make_url(url).set(drivername="postgresql")
        err.print(
            say(
                "cli.db_backup_postgresql",
                path=path,
                url=libpq.render_as_string(hide_password=True),
            ),
            soft_wrap=True,
        )
        raise typer.Exit(1)
    try:
        report = backup_sqlite(url, path)
    except BackupError as exc:
        err.print(f"[red]Error:[/] {say('cli.db_backup_failed', reason=exc)}", soft_wrap=True)
        raise typer.Exit(1) from exc
    if not report.ok:
        err.print(
            say("cli.db_backup_damaged", path=report.store, detail=report.detail), soft_wrap=True
        )
        raise typer.Exit(1)
    console.print(
        say("cli.db_backup_done", path=report.store, size=Path(report.store).stat().st_size),
        soft_wrap=True,
    )
