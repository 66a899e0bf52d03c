"""`trygg qc status | corrective | release-held`: the QC status of every configured test, the
corrective action that (with an accepted run) lifts a lockout, and the signed release of the
results a lifted lockout held."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.table import Table

from gateway.cli.common import (
    ConfigOption,
    JsonFlag,
    check_signature,
    console,
    err,
    load,
    open_store,
    print_json,
    say,
)

UserOption = Annotated[str, typer.Option("--user", help="Who signs (password: TRYGG_PASSWORD).")]


def _when(at: object) -> str:
    from datetime import datetime

    return at.strftime("%Y-%m-%d %H:%M") if isinstance(at, datetime) else "–"


def qc_status(config: ConfigOption, as_json: JsonFlag = False) -> None:
    """The QC status of every test with a `qc` entry in the config (in control, warning,
    out of control, overdue, no QC), its next due time and open lockout."""
    from gateway.rules import context_from_config
    from gateway.store.qc_state import list_status

    cfg = load(config)
    engine = open_store(cfg)
    with engine.connect() as conn:
        rows = list_status(conn, context_from_config(cfg).qc)
    engine.dispose()
    if as_json:
        print_json(
            [
                {
                    "instrument": r.instrument_id,
                    "test": r.test_code,
                    "status": r.status.value,
                    "since": r.since.isoformat() if r.since else None,
                    "last_run_at": r.last_run_at.isoformat() if r.last_run_at else None,
                    "last_accepted_at": r.last_accepted_at.isoformat()
                    if r.last_accepted_at
                    else None,
                    "due_at": r.due_at.isoformat() if r.due_at else None,
                    "patients_since": r.patients_since,
                    "lockout": r.lockout_id,
                    "schedule": r.schedule,
                    "lockout_mode": r.lockout_mode,
                }
                for r in rows
            ]
        )
        return
    if not rows:
        console.print(say("cli.qc.status.none"))
        return
    table = Table(title=say("cli.qc.status.title"), box=box.SIMPLE)
    for key in ("instrument", "test", "status", "since", "due", "lockout"):
        table.add_column(say(f"cli.qc.col.{key}"))
    for r in rows:
        table.add_row(
            r.instrument_id,
            r.test_code,
            say(f"qc_status.{r.status.value}"),
            _when(r.since),
            _when(r.due_at),
            str(r.lockout_id or ""),
        )
    console.print(table)


def qc_corrective(
    lockout_id: Annotated[int, typer.Argument(help="The lockout (trygg qc status).")],
    text: Annotated[str, typer.Option("--text", help="What was done about the failure.")],
    user: UserOption,
    config: ConfigOption,
) -> None:
    """Document the corrective action of a QC lockout (signed: supervisor or quality
    manager). The lockout lifts when an accepted control run has followed it too."""
    from gateway.store.qc_state import record_corrective_action
    from gateway.store.writer import run_in_transaction

    cfg = load(config)
    engine = open_store(cfg)
    check_signature(cfg, engine, user)
    try:
        lifted = run_in_transaction(
            engine, lambda tx: record_corrective_action(tx, lockout_id, text=text, person=user)
        )
    except ValueError as exc:
        err.print(f"[red]{say('cli.qc.corrective.refused', error=exc)}[/]")
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    key = "cli.qc.corrective.lifted" if lifted else "cli.qc.corrective.waiting"
    console.print(say(key, lockout=lockout_id))


def qc_release_held(
    lockout_id: Annotated[int, typer.Argument(help="The lifted lockout.")],
    note: Annotated[str, typer.Option("--note", help="Why the results may go out.")],
    user: UserOption,
    config: ConfigOption,
) -> None:
    """Release (signed) every result a lifted QC lockout held; refused while it is open."""
    from gateway.holds.qc_lockout import release_lockout_results
    from gateway.rules import context_from_config
    from gateway.store.writer import run_in_transaction

    cfg = load(config)
    engine = open_store(cfg)
    check_signature(cfg, engine, user)
    context = context_from_config(cfg)
    try:
        outcomes = run_in_transaction(
            engine, lambda tx: release_lockout_results(tx, lockout_id, user, note, context=context)
        )
    except KeyError as exc:
        err.print(f"[red]{say('cli.qc.corrective.refused', error=f'lockout {lockout_id}')}[/]")
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    for outcome in outcomes:
        if not outcome.done:
            err.print(f"{outcome.result_id}: {outcome.message('en')}")
    done = sum(1 for o in outcomes if o.done)
    console.print(say("cli.qc.released", released=done, refused=len(outcomes) - done))
    if done < len(outcomes):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the commands to the `trygg qc` app."""
    app.command("status")(qc_status)
    app.command("corrective")(qc_corrective)
    app.command("release-held")(qc_release_held)
