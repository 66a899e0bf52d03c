"""`trygg demo`: the gateway with simulated analysers and a simulated LIS, shown live.

Each run starts on a fresh demo database so the closing summary reconciles exactly what this
run's simulators had acknowledged against what the gateway holds ("lost" must be 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from sqlalchemy import Engine, select

from gateway.app import Gateway
from gateway.config import Config
from gateway.store.engine import is_sqlite
from gateway.store.queries import summary
from gateway.store.tables import results
from gateway.web.i18n import label
from simulators.hl7_analyser import AnalyserSimOptions, Hl7AnalyserSim
from simulators.lis import LisSimOptions, LisSimulator

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "config" / "demo.toml"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    seconds: float | None = None
    summary_json: Path | None = None
    rate_per_s: float = 3.0
    web: bool = True
    fresh: bool = True


def _fresh_sqlite(config: Config) -> None:
    from sqlalchemy.engine import make_url

    database = make_url(config.store.url).database
    if database:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(database + suffix).unlink()


def reconcile(engine: Engine, sims: list[Hl7AnalyserSim]) -> int:
    """Results an analyser got AA for that the gateway does not hold: must be 0."""
    with engine.connect() as conn:
        stored = {
            (r.instrument_id, r.specimen_id, r.test_code, r.value)
            for r in conn.execute(
                select(
                    results.c.instrument_id,
                    results.c.specimen_id,
                    results.c.test_code,
                    results.c.value,
                )
            )
        }
    lost = 0
    for sim in sims:
        for obs in sim.ledger.acked:
            if (sim.options.instrument_id, obs.specimen_id, obs.test_code, obs.value) not in stored:
                lost += 1
    return lost


def summary_dict(engine: Engine, sims: list[Hl7AnalyserSim]) -> dict[str, Any]:
    with engine.connect() as conn:
        s = summary(conn)
    return {
        "received": s.received,
        "held": s.held_by_reason,
        "queued": s.by_state.get("queued", 0),
        "sent": s.by_state.get("sent", 0),
        "acknowledged": s.by_state.get("acknowledged", 0),
        "rejected": s.by_state.get("rejected", 0),
        "quarantined": s.quarantined,
        "lost": reconcile(engine, sims),
    }


_WORDS: dict[str, dict[str, Any]] = {
    "nb": {
        "instruments": "Instrumenter",
        "columns": ("Instrument", "Tilkoblet", "Meldinger", "Svar", "Karantene"),
        "yes": "ja",
        "no": "nei",
        "flow": "Flyt etter {s:.0f} s",
        "flow_columns": ("Mottatt", "Holdt", "I kø", "Sendt", "Kvittert", "Avvist", "Karantene"),
        "lis_up": "tilkoblet",
        "lis_down": "venter",
        "lis": "LIS: {state}   meldinger mottatt av LIS-simulatoren: {n}   "
        "web: http://{web}   Ctrl-C stopper",
    },
    "en": {
        "instruments": "Instruments",
        "columns": ("Instrument", "Connected", "Messages", "Results", "Quarantine"),
        "yes": "yes",
        "no": "no",
        "flow": "Flow after {s:.0f} s",
        "flow_columns": (
            "Received",
            "Held",
            "Queued",
            "Sent",
            "Acknowledged",
            "Rejected",
            "Quarantine",
        ),
        "lis_up": "connected",
        "lis_down": "waiting",
        "lis": "LIS: {state}   messages received by the LIS simulator: {n}   "
        "web: http://{web}   Ctrl-C stops",
    },
}


def _view(gateway: Gateway, engine: Engine, lis: LisSimulator, elapsed: float) -> Group:
    lang = gateway.config.site.language
    words = _WORDS[lang]
    instruments = Table(title=words["instruments"], expand=True)
    for column in words["columns"]:
        instruments.add_column(column)
    for inst in gateway.config.instruments:
        live = gateway.live.instruments.get(inst.id)
        if live is None:
            continue
        instruments.add_row(
            inst.name or inst.id,
            f"[green]{words['yes']}[/]" if live.connected else f"[red]{words['no']}[/]",
            str(live.messages),
            str(live.results),
            str(live.quarantined),
        )
    with engine.connect() as conn:
        s = summary(conn)
    flow = Table(title=str(words["flow"]).format(s=elapsed), expand=True)
    for column in words["flow_columns"]:
        flow.add_column(column, justify="right")
    held = (
        "\n".join(f"{label(lang, 'reason', k)}: {v}" for k, v in sorted(s.held_by_reason.items()))
        or "0"
    )
    flow.add_row(
        str(s.received),
        held,
        str(s.by_state.get("queued", 0)),
        str(s.by_state.get("sent", 0)),
        str(s.by_state.get("acknowledged", 0)),
        str(s.by_state.get("rejected", 0)),
        str(s.quarantined),
    )
    fwd = gateway.forwarder
    lis_line = Table.grid()
    state = (
        f"[green]{words['lis_up']}[/]"
        if fwd and fwd.connected
        else (f"[yellow]{words['lis_down']}[/]")
    )
    lis_line.add_row(
        str(words["lis"]).format(state=state, n=lis.received, web=gateway.config.web.listen)
    )
    return Group(instruments, flow, lis_line)


async def run_demo(config: Config, options: DemoOptions, console: Console) -> dict[str, Any]:
    if options.fresh and is_sqlite(config.store.url):
        _fresh_sqlite(config)
    gateway = Gateway(config)
    lis_url = urlsplit(config.lis.url) if config.lis else None
    lis = LisSimulator(
        LisSimOptions(host=lis_url.hostname or "127.0.0.1", port=lis_url.port or 2575)
        if lis_url
        else LisSimOptions(host="127.0.0.1", port=0)
    )
    sims = []
    for index, inst in enumerate(config.instruments):
        parts = urlsplit(inst.url)
        if inst.driver != "hl7_mllp" or parts.scheme != "tcp-listen":
            continue
        sims.append(
            Hl7AnalyserSim(
                AnalyserSimOptions(
                    instrument_id=inst.id,
                    host=parts.hostname or "127.0.0.1",
                    port=parts.port or 0,
                    rate_per_s=options.rate_per_s,
                    serial=f"SIM-{index + 1:04d}",
                    operator_id=f"OP{index + 1}",
                    broken_share=0.01,
                    seed=index,
                )
            )
        )
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with lis:
        gateway_task = asyncio.create_task(gateway.run(web=options.web), name="gateway")
        sim_tasks = [
            asyncio.create_task(sim.run(), name=f"sim-{sim.options.instrument_id}") for sim in sims
        ]
        try:
            while not gateway.ready.is_set():
                if gateway_task.done():
                    gateway_task.result()  # surfaces why it could not start
                await asyncio.sleep(0.05)
            with Live(console=console, refresh_per_second=2, transient=False) as live:
                while options.seconds is None or loop.time() - started < options.seconds:
                    if gateway_task.done():
                        gateway_task.result()  # surfaces the error
                    live.update(_view(gateway, gateway.engine, lis, loop.time() - started))
                    await asyncio.sleep(0.5)
                for task in sim_tasks:
                    task.cancel()
                await asyncio.gather(*sim_tasks, return_exceptions=True)
                # let the forwarder drain what the analysers delivered
                drain_until = loop.time() + 15
                while loop.time() < drain_until:
                    live.update(_view(gateway, gateway.engine, lis, loop.time() - started))
                    with gateway.engine.connect() as conn:
                        s = summary(conn)
                    if s.by_state.get("queued", 0) + s.by_state.get("sent", 0) == 0:
                        break
                    await asyncio.sleep(0.3)
        finally:
            for task in sim_tasks:
                task.cancel()
            await asyncio.gather(*sim_tasks, return_exceptions=True)
            gateway_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gateway_task
    data = summary_dict(gateway.engine, sims)
    gateway.engine.dispose()
    if options.summary_json is not None:
        options.summary_json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data
