"""`trygg`: the command line (Typer + Rich); one module per command or command group.

Every command that touches the store takes --config. Only ``simulate`` (and ``demo``, through
``gateway.demo``) imports the simulators; an import-linter contract keeps it so.
"""

from __future__ import annotations

import typer

from gateway.cli import (
    audit,
    db,
    deviations,
    eqa,
    operators,
    orders,
    outbox,
    qc,
    quarantine,
    results,
    users,
)
from gateway.cli.access_log import access_log
from gateway.cli.check_config import check_config
from gateway.cli.common import fail
from gateway.cli.demo import demo
from gateway.cli.drivers import list_drivers
from gateway.cli.run import run
from gateway.cli.simulate import lis_sim, simulate
from gateway.errors import GatewayError

app = typer.Typer(
    help="Trygg: instrument-integration gateway for medical laboratories and POCT.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db.app, name="db")
app.add_typer(results.app, name="results")
app.add_typer(outbox.app, name="outbox")
app.add_typer(quarantine.app, name="quarantine")
app.add_typer(audit.app, name="audit")
app.add_typer(orders.app, name="orders")
app.add_typer(users.app, name="users")
app.add_typer(operators.app, name="operators")
app.add_typer(qc.app, name="qc")
app.add_typer(eqa.app, name="eqa")
app.add_typer(deviations.app, name="deviations")
app.command()(run)
app.command()(demo)
app.command("lis-sim")(lis_sim)
app.command()(simulate)
app.command("check-config")(check_config)
app.command("drivers")(list_drivers)
app.command("access-log")(access_log)


def main() -> None:
    from gateway.store.health import is_database_error

    try:
        app()
    except GatewayError as exc:
        fail(exc)
    except Exception as exc:  # a database error no command translated: still no traceback
        if not is_database_error(exc):
            raise
        fail(exc)
