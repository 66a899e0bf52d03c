"""`trygg run`: the gateway in the foreground until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib

import typer

from gateway.cli.common import ConfigOption, console, load, setup_logging


def run(config: ConfigOption, verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Run the gateway until Ctrl-C."""
    from gateway.app import Gateway

    setup_logging(verbose)
    cfg = load(config)
    gateway = Gateway(cfg)
    console.print(
        f"Trygg for [bold]{cfg.site.name}[/]: {len(cfg.instruments)} instrument(s), "
        f"LIS {cfg.lis.url if cfg.lis else 'none'}, web http://{cfg.web.listen}"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(gateway.run())
    console.print("Stopped.")
