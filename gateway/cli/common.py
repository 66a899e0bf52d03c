"""What every `trygg` command shares: the consoles, the --config and --json options, loading."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from gateway.catalogue import FALLBACK_LANGUAGE, text
from gateway.config import Config, load_config
from gateway.errors import GatewayError, StoreError

if TYPE_CHECKING:
    from sqlalchemy import Engine

console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Site config (TOML).", envvar="TRYGG_CONFIG")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def load(path: Path) -> Config:
    """The config at ``path``, or exit 2 with the error (file, key and problem)."""
    try:
        return load_config(path)
    except GatewayError as exc:
        err.print(f"[red]Config error[/]\n{exc}")
        raise typer.Exit(2) from exc


def say(key: str, /, **params: object) -> str:
    """A CLI text from the catalogue (the CLI speaks English), escaped for Rich's markup."""
    return escape(text(FALLBACK_LANGUAGE, key, **params))


def fail(exc: BaseException, code: int = 2) -> NoReturn:
    """The CLI's error boundary: one message, never a traceback, a non-zero exit.

    A database error (SQLAlchemy's or the driver's) and a bare ``StoreError`` say what the
    database answered (the driver's words only: no statement, no row values) and what to do;
    every other ``GatewayError`` says its own message, which names its remedy.
    """
    from gateway.store.health import db_error_text, is_database_error

    if is_database_error(exc):
        message = say("cli.store_error", detail=db_error_text(exc))
    elif type(exc) is StoreError:  # its text is already the driver's words (see the writer)
        message = say("cli.store_error", detail=exc)
    else:
        message = escape(str(exc))
    err.print(f"[red]Error:[/] {message}", soft_wrap=True)
    sys.exit(code)


def open_store(config: Config) -> Engine:
    """The site's database engine, its schema migrated to the newest version."""
    from gateway.store.engine import make_engine, upgrade

    engine = make_engine(config.store.url)
    upgrade(engine)
    return engine


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def signing_password() -> str:
    """The signer's password for an electronic signature: ``TRYGG_PASSWORD`` when set (scripts),
    else asked without echo."""
    import os

    given = os.environ.get("TRYGG_PASSWORD")
    if given is not None:
        return given
    return str(typer.prompt(say("action.password_prompt"), hide_input=True))


def check_signature(config: Config, engine: Engine, person: str) -> None:
    """Ask ``person``'s password and check it (``purpose="signature"``, with the lockout);
    exit 1 with the reason when it does not sign."""
    from datetime import UTC, datetime, timedelta

    from gateway.store.signin import Policy, authenticate

    policy = Policy(config.people.login_attempts, timedelta(minutes=config.people.lockout_minutes))
    attempt = authenticate(
        engine,
        person,
        signing_password(),
        now=datetime.now(UTC),
        policy=policy,
        purpose="signature",
    )
    if not attempt.ok:
        err.print(f"[red]Not signed[/]: {say(f'action.signin.{attempt.outcome.value}')}")
        raise typer.Exit(1)
