"""What every `trygg` command shares: the consoles, the --config and --json options, loading."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from gateway.config import Config, load_config
from gateway.errors import GatewayError

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
