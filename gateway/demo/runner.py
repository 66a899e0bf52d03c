"""Running the demo: a fresh database, the gateway, the LIS and the plan's simulators, then the
closing summary.

A serial simulator starts talking only once the gateway has opened its port: pyserial flushes
input on open, and a lost ENQ would cost the analyser E1381's 15 s reply timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.live import Live

from drivers.model import OrderRequest
from drivers.protocols.hl7.orders import build_order_message
from gateway.app import Gateway
from gateway.catalogue import text
from gateway.config import Config
from gateway.demo.options import DemoOptions
from gateway.demo.people import import_demo_people, one_time_password, people_in, read_people
from gateway.demo.plan import AstmDemoSim, DemoPlan, plan_demo
from gateway.demo.qc import QcStory, plan_story, register_lots, start_controls, today_in
from gateway.demo.summary import summary_dict
from gateway.demo.view import live_view
from gateway.demo.words import WORDS
from gateway.people.passwords import hash_password
from gateway.store.engine import is_sqlite
from gateway.store.qc_counts import qc_counts
from gateway.store.queries import summary
from simulators.lis import LisSimOptions, LisSimulator
from simulators.lis_orders import send_order_messages


def _fresh_sqlite(config: Config) -> None:
    """Delete the demo's SQLite database, so the run's summary counts this run only."""
    from sqlalchemy.engine import make_url

    database = make_url(config.store.url).database
    if database:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(database + suffix).unlink()


async def _run_astm(entry: AstmDemoSim, gateway: Gateway) -> None:
    """Run one ASTM simulator; a serial one waits for the gateway's port (module docstring)."""
    if entry.wait_for_port:
        while True:
            live = gateway.live.instruments.get(entry.instrument_id)
            if live is not None and live.connected:
                break
            await asyncio.sleep(0.05)
    await entry.sim.run(entry.connector)


def _raise_if_failed(tasks: Sequence[asyncio.Task[Any]]) -> None:
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            task.result()  # surfaces why a simulator stopped


async def _send_demo_orders(
    config: Config, requests: Sequence[OrderRequest], console: Console
) -> None:
    """The LIS places the demo's orders on the gateway's order port, ten specimens a message."""
    if not requests or config.lis is None or config.lis.orders_url is None:
        return
    parts = urlsplit(config.lis.orders_url)
    now = datetime.now(UTC)
    messages = [
        build_order_message(requests[i : i + 10], control_id=f"DEMO-ORD-{i // 10 + 1}", now=now)
        for i in range(0, len(requests), 10)
    ]
    codes = await send_order_messages(
        parts.hostname or "127.0.0.1",
        parts.port or 0,
        messages,
        connect_within_s=5.0,  # the order port opens with the gateway's other sessions
    )
    lang = config.site.language
    note = str(WORDS[lang]["orders_note"]).format(n=len(requests), codes=" ".join(codes))
    console.print(note, highlight=False, markup=False)


async def _import_people(gateway: Gateway, options: DemoOptions, console: Console) -> None:
    """The office's competence records, before any analyser sends a result."""
    if options.people is None:
        return
    data = read_people(options.people)
    today = datetime.now(ZoneInfo(gateway.config.site.timezone)).date()
    password = one_time_password(people_in(data))
    password_hash = await asyncio.to_thread(hash_password, password)  # once, off the writer
    done = await gateway.writer.write(
        lambda tx: import_demo_people(tx, gateway.config, data, today, password_hash)
    )
    words = WORDS[gateway.config.site.language]
    note = str(words["people_note"]).format(
        file=options.people.name,
        people=len(done.people),
        certifications=len(done.plan.certifications),
        enforce=words["yes"] if gateway.config.people.enforce else words["no"],
    )
    console.print(note, highlight=False, markup=False)
    sign_in = str(words["password_note"]).format(
        people=", ".join(done.people), password=password, web=gateway.config.web.listen
    )
    console.print(sign_in, highlight=False, markup=False)


async def _register_lots(gateway: Gateway, plan: DemoPlan, console: Console) -> None:
    """The simulators' control lots and their manufacturer targets, before any control runs."""
    config = gateway.config
    added = await gateway.writer.write(
        lambda tx: register_lots(tx, config, plan.astm, today_in(config))
    )
    runs = start_controls(config, plan.astm)
    note = text(config.site.language, "demo.qc.lots_note", lots=added, runs=runs)
    console.print(note, highlight=False, markup=False)


def _print_story(gateway: Gateway, story: QcStory | None, console: Console) -> None:
    """What quality control did in this run, in the site's language."""
    lang = gateway.config.site.language
    with gateway.engine.connect() as conn:
        counts = qc_counts(conn)
    judged = counts.judged
    console.line()  # the live view's last frame ends without one
    console.print(
        text(
            lang,
            "demo.qc.summary",
            runs=counts.runs,
            accepted=judged.get("accept", 0) + judged.get("pass", 0),
            warnings=judged.get("warning", 0),
            rejected=judged.get("reject", 0) + judged.get("fail", 0),
            opened=counts.lockouts_opened,
            lifted=counts.lockouts_lifted,
        ),
        highlight=False,
        markup=False,
    )
    for line in story.log if story is not None else ():
        console.print(f"  {line}", highlight=False, markup=False)


async def run_demo(config: Config, options: DemoOptions, console: Console) -> dict[str, Any]:
    """Plan and run the demo on ``config``; return the closing summary."""
    if options.fresh and is_sqlite(config.store.url):
        _fresh_sqlite(config)
    plan = plan_demo(config, options)
    try:
        return await run_plan(plan, options, console)
    finally:
        plan.close()  # after the gateway has closed its serial ports


async def run_plan(plan: DemoPlan, options: DemoOptions, console: Console) -> dict[str, Any]:
    """Run the gateway, the LIS and the plan's simulators; return the closing summary."""
    for note in plan.notes:
        console.print(note, highlight=False, markup=False)
    config = plan.config
    gateway = Gateway(config)
    lis_url = urlsplit(config.lis.url) if config.lis else None
    lis = LisSimulator(
        LisSimOptions(host=lis_url.hostname or "127.0.0.1", port=lis_url.port or 2575)
        if lis_url
        else LisSimOptions(host="127.0.0.1", port=0)
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with lis:
        gateway_task = asyncio.create_task(gateway.run(web=options.web), name="gateway")
        sim_tasks: list[asyncio.Task[Any]] = []
        story: QcStory | None = None
        try:
            while not gateway.ready.is_set():
                if gateway_task.done():
                    gateway_task.result()  # surfaces why it could not start
                await asyncio.sleep(0.05)
            await _import_people(gateway, options, console)
            await _register_lots(gateway, plan, console)
            await _send_demo_orders(config, plan.orders, console)
            # the run's seconds count from here, when the analysers start: the set-up above
            # (password hashing, the lots) takes longer on a busy machine, and a short run
            # would otherwise have too little time left for the QC story
            started = loop.time()
            story = plan_story(config, plan.astm, options.seconds)
            sim_tasks = [
                asyncio.create_task(sim.run(), name=f"sim-{sim.options.instrument_id}")
                for sim in plan.hl7
            ] + [
                asyncio.create_task(_run_astm(entry, gateway), name=f"sim-{entry.instrument_id}")
                for entry in plan.astm
            ]
            with Live(console=console, refresh_per_second=2, transient=False) as live:
                while options.seconds is None or loop.time() - started < options.seconds:
                    if gateway_task.done():
                        gateway_task.result()  # surfaces the error
                    _raise_if_failed(sim_tasks)
                    if story is not None:
                        await story.step(gateway, loop.time() - started)
                    live.update(live_view(gateway, plan, lis, loop.time() - started, story))
                    await asyncio.sleep(0.5)
                for task in sim_tasks:
                    task.cancel()
                await asyncio.gather(*sim_tasks, return_exceptions=True)
                # let the forwarder drain what the analysers delivered
                drain_until = loop.time() + 15
                while loop.time() < drain_until:
                    live.update(live_view(gateway, plan, lis, loop.time() - started, story))
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
    if story is not None:
        story.settle(gateway)  # a lockout may have lifted while the outbox drained
    _print_story(gateway, story, console)
    data = summary_dict(gateway.engine, plan, story)
    gateway.engine.dispose()
    if options.summary_json is not None:
        options.summary_json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data
