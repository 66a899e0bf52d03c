"""`trygg demo`: the gateway with simulated analysers and LIS (gateway.demo), and its summary."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated

import typer

from gateway.cli.common import console, load


def demo(
    seconds: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl-C).")
    ] = None,
    summary_json: Annotated[
        Path | None, typer.Option("--summary-json", help="Write the closing summary here.")
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Demo config (default: bundled).")
    ] = None,
    rate: Annotated[float, typer.Option(help="Messages per second per analyser.")] = 3.0,
    web: Annotated[bool, typer.Option(help="Serve the dashboard.")] = True,
    people: Annotated[
        Path | None,
        typer.Option(
            "--people", help="Competence records to import at start (default: the demo's)."
        ),
    ] = None,
) -> None:
    """Run the gateway with simulated analysers and a simulated LIS, and show the flow live."""
    from gateway.demo import DEMO_CONFIG, DemoOptions, run_demo
    from gateway.demo.options import DEMO_PEOPLE

    logging.basicConfig(level=logging.ERROR)
    cfg = load(config or DEMO_CONFIG)
    console.print(
        f"[bold]Trygg demo[/]: {cfg.site.title or cfg.site.name}; database {cfg.store.url}; "
        f"dashboard http://{cfg.web.listen}"
    )
    options = DemoOptions(
        seconds=seconds,
        summary_json=summary_json,
        rate_per_s=rate,
        web=web,
        people=people or DEMO_PEOPLE,
    )
    try:
        data = asyncio.run(run_demo(cfg, options, console))
    except KeyboardInterrupt:
        console.print("Stopped.")
        return
    console.print()
    console.print_json(json.dumps(data))
    if data["lost"]:
        raise typer.Exit(1)
