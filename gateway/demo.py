"""`trygg demo`: the gateway with simulated HL7 and ASTM analysers and a simulated LIS, live.

Each run starts on a fresh demo database so the closing summary reconciles exactly what this
run's simulators had acknowledged against what the gateway holds ("lost" must be 0).

Serial instruments run over pseudo-terminal pairs (``simulators.pty``): the simulator holds the
master side, the gateway opens the slave side through its ordinary ``serial://`` transport. The
demo *rewrites the instrument's URL* in the loaded config before the gateway starts: it swaps
the device path for the pair's slave (``/dev/pts/N``) and keeps the line settings (baud rate,
parity, ...). A symlink at a configured path was the other choice; it was not taken because it
needs a writable shared directory, goes stale when a run is killed, and collides when two demos
run at once (the tests do). The configured device path is what a real site would use. Where
there are no pseudo-terminals (Windows), that instrument's URL becomes a ``tcp-listen://`` port
on 127.0.0.1 instead and the screen says so.

A serial simulator starts talking only once the gateway has opened its port: pyserial flushes
input on open, and a lost ENQ would cost the analyser E1381's 15 s reply timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from sqlalchemy import Connection, Engine, func, select

from drivers.model import OrderAction, OrderRequest
from drivers.protocols.astm.records import parse_message
from drivers.protocols.hl7.orders import build_order_message
from drivers.registry import ASTM_PROFILES, DRIVERS
from drivers.transports import Connector, connector_for
from gateway.app import Gateway
from gateway.config import Config, InstrumentConfig
from gateway.errors import ConfigError, TransportError, loggable
from gateway.ingest import digest
from gateway.store.engine import is_sqlite
from gateway.store.queries import summary
from gateway.store.tables import orders, qc_results, raw_messages, results
from gateway.web.i18n import label
from simulators.astm_analyser import AstmAnalyserSim, AstmSimOptions, PtyConnector
from simulators.hl7_analyser import AnalyserSimOptions, Hl7AnalyserSim
from simulators.lis import LisSimOptions, LisSimulator
from simulators.lis_orders import send_order_messages
from simulators.national_id import make_fnr
from simulators.pty import PtyPair

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "config" / "demo.toml"

#: instrument options with this prefix belong to the demo's simulators, not to the driver
SIM_OPTION_PREFIX = "sim_"
_ASTM_PROFILES = {profile.key: profile for profile in ASTM_PROFILES}


@dataclass(frozen=True, slots=True)
class DemoOptions:
    seconds: float | None = None
    summary_json: Path | None = None
    #: messages (HL7) or samples (ASTM) per second for simulators without ``sim_rate_per_s``
    rate_per_s: float = 3.0
    web: bool = True
    fresh: bool = True
    #: False runs serial instruments over TCP, as on a system without pseudo-terminals
    pty: bool = True


_WORDS: dict[str, dict[str, Any]] = {
    "nb": {
        "instruments": "Instrumenter",
        "columns": ("Instrument", "Kobling", "Tilkoblet", "Meldinger", "Svar", "QC", "Karantene"),
        "yes": "ja",
        "no": "nei",
        "flow": "Flyt etter {s:.0f} s",
        "flow_columns": (
            "Mottatt",
            "Holdt",
            "I kø",
            "Sendt",
            "Kvittert",
            "Avvist",
            "QC",
            "Karantene",
        ),
        "lis_up": "tilkoblet",
        "lis_down": "venter",
        "lis": "LIS: {state}   meldinger mottatt av LIS-simulatoren: {n}   "
        "web: http://{web}   Ctrl-C stopper",
        "serial": "seriell",
        "not_simulated": "ikke simulert",
        "pty_note": "{id}: seriell via pseudoterminal {device} ({baud} baud); "
        "simulatoren sitter i den andre enden",
        "tcp_note": "{id}: ingen pseudoterminal ({why}); simulatoren kjører over "
        "TCP 127.0.0.1:{port} i stedet for seriell",
        "dial_note": "{id}: gatewayen ringer ut til {url}; ingen simulator for det i demoen",
        "orders_note": "LIS-simulatoren sendte {n} bestillinger til arbeidslisten "
        "(kvittering: {codes}); analysatoren spør etter dem når prøven står i",
    },
    "en": {
        "instruments": "Instruments",
        "columns": ("Instrument", "Link", "Connected", "Messages", "Results", "QC", "Quarantine"),
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
            "QC",
            "Quarantine",
        ),
        "lis_up": "connected",
        "lis_down": "waiting",
        "lis": "LIS: {state}   messages received by the LIS simulator: {n}   "
        "web: http://{web}   Ctrl-C stops",
        "serial": "serial",
        "not_simulated": "not simulated",
        "pty_note": "{id}: serial over pseudo-terminal {device} ({baud} baud); "
        "the simulator is at the other end",
        "tcp_note": "{id}: no pseudo-terminal ({why}); simulated over TCP 127.0.0.1:{port} "
        "instead of a serial port",
        "dial_note": "{id}: the gateway dials out to {url}; the demo has no simulator for that",
        "orders_note": "the LIS simulator sent {n} orders to the worklist "
        "(acknowledged: {codes}); the analyser asks for them when the tube is loaded",
    },
}


# --- the plan: which simulator drives which instrument, over what ----------------------------


@dataclass(slots=True)
class AstmDemoSim:
    """One simulated ASTM analyser and how it reaches the gateway."""

    instrument_id: str
    driver: str
    sim: AstmAnalyserSim
    connector: Connector
    #: serial: start once the gateway has the port open (see the module docstring)
    wait_for_port: bool


@dataclass(slots=True)
class DemoPlan:
    """The config the gateway runs (serial URLs pointing at pty pairs) and its simulators."""

    config: Config
    hl7: list[Hl7AnalyserSim] = field(default_factory=list)
    astm: list[AstmDemoSim] = field(default_factory=list)
    #: instrument id -> how it is connected, for the screen
    links: dict[str, str] = field(default_factory=dict)
    #: lines shown before the live view (how serial instruments are simulated)
    notes: list[str] = field(default_factory=list)
    pairs: list[PtyPair] = field(default_factory=list)
    #: orders the demo's LIS sends before the analysers start (``sim_ordered`` specimens)
    orders: list[OrderRequest] = field(default_factory=list)

    def close(self) -> None:
        for pair in self.pairs:
            pair.close()
        self.pairs.clear()


def _sim_number(inst: InstrumentConfig, name: str, default: float) -> float:
    value = inst.options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"instrument {inst.id!r}: options.{name}: expected a number, got {value!r}"
        )
    return float(value)


def _sim_operators(inst: InstrumentConfig, default: str) -> tuple[str, ...]:
    text = str(inst.options.get("sim_operators", default))
    operators = tuple(part.strip() for part in text.split(",") if part.strip())
    if not operators:
        raise ConfigError(f"instrument {inst.id!r}: options.sim_operators: names no operator")
    return operators


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tcp_link(protocol: str, url: str) -> str:
    return f"{protocol}, TCP :{urlsplit(url).port}"


def _astm_options(inst: InstrumentConfig, index: int, options: DemoOptions) -> AstmSimOptions:
    return AstmSimOptions(
        seed=index,
        count=None,  # until the demo stops
        rate_per_s=_sim_number(inst, "sim_rate_per_s", options.rate_per_s),
        qc_share=_sim_number(inst, "sim_qc_share", 0.1),
        operator_ids=_sim_operators(inst, "OP1"),
        invalid_patient_share=_sim_number(inst, "sim_invalid_id_share", 0.05),
        query_share=_sim_number(inst, "sim_query_share", 0.0),
        specimen_ids=_ordered_specimens(inst, index),
        serial=f"SIM{index + 1:04d}",
    )


def _ordered_specimens(inst: InstrumentConfig, index: int) -> tuple[str, ...]:
    """The specimen IDs the demo's LIS orders for this analyser (its tubes' labels)."""
    count = int(_sim_number(inst, "sim_ordered", 0))
    return tuple(f"R{index + 1}{n:05d}" for n in range(1, count + 1))


def _demo_orders(inst: InstrumentConfig, index: int) -> list[OrderRequest]:
    """Orders for the analyser's labelled specimens: ``sim_order_tests``, every fifth stat."""
    tests = tuple(
        code.strip() for code in str(inst.options.get("sim_order_tests", "")).split(",") if code
    )
    if not tests:
        return []
    rng = random.Random(index)
    return [
        OrderRequest(
            OrderAction.NEW,
            specimen,
            tests,
            make_fnr(rng),
            "S" if number % 5 == 0 else "R",
            placer_order=f"REK{index + 1}{number:05d}",
        )
        for number, specimen in enumerate(_ordered_specimens(inst, index), 1)
    ]


def plan_demo(config: Config, options: DemoOptions) -> DemoPlan:
    """Pair every instrument the demo can simulate with its simulator; open the pty pairs.

    The caller closes the plan (its pty pairs) once the gateway has stopped.
    """
    words = _WORDS[config.site.language]
    plan = DemoPlan(config)
    instruments: list[InstrumentConfig] = []
    try:
        for index, inst in enumerate(config.instruments):
            url = _plan_instrument(plan, inst, index, options, words)
            driver_options = {
                k: v for k, v in inst.options.items() if not k.startswith(SIM_OPTION_PREFIX)
            }
            instruments.append(
                InstrumentConfig.model_validate(
                    inst.model_dump() | {"url": url, "options": driver_options}
                )
            )
    except BaseException:
        plan.close()
        raise
    plan.config = config.model_copy(update={"instruments": instruments})
    return plan


def _plan_instrument(
    plan: DemoPlan,
    inst: InstrumentConfig,
    index: int,
    options: DemoOptions,
    words: Mapping[str, Any],
) -> str:
    """Add the instrument's simulator to the plan; return the URL the gateway should use."""
    scheme = urlsplit(inst.url).scheme
    plan.links[inst.id] = str(words["not_simulated"])
    if not inst.enabled:
        return inst.url
    if inst.driver == "hl7_mllp" and scheme == "tcp-listen":
        plan.hl7.append(Hl7AnalyserSim(_hl7_options(inst, index, options)))
        plan.links[inst.id] = _tcp_link("HL7", inst.url)
        return inst.url
    profile = _ASTM_PROFILES.get(inst.driver)
    if profile is None:
        return inst.url
    if scheme not in ("tcp-listen", "serial"):
        plan.notes.append(str(words["dial_note"]).format(id=inst.id, url=inst.url))
        return inst.url
    sim = AstmAnalyserSim(profile, _astm_options(inst, index, options))
    plan.orders += _demo_orders(inst, index)
    if scheme == "serial":
        return _plan_serial(plan, inst, sim, options, words)
    _plan_astm_tcp(plan, inst, sim, inst.url)
    return inst.url


def _hl7_options(inst: InstrumentConfig, index: int, options: DemoOptions) -> AnalyserSimOptions:
    parts = urlsplit(inst.url)
    return AnalyserSimOptions(
        instrument_id=inst.id,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 0,
        rate_per_s=_sim_number(inst, "sim_rate_per_s", options.rate_per_s),
        serial=f"SIM-{index + 1:04d}",
        operator_id=_sim_operators(inst, f"OP{index + 1}")[0],
        invalid_id_share=_sim_number(inst, "sim_invalid_id_share", 0.03),
        broken_share=0.01,
        seed=index,
    )


def _plan_astm_tcp(plan: DemoPlan, inst: InstrumentConfig, sim: AstmAnalyserSim, url: str) -> None:
    """The simulator connects to the gateway's ``tcp-listen://`` port ``url``."""
    parts = urlsplit(url)
    connector = connector_for(f"tcp://{parts.hostname}:{parts.port}")
    plan.astm.append(AstmDemoSim(inst.id, inst.driver, sim, connector, wait_for_port=False))
    plan.links[inst.id] = _tcp_link("ASTM", url)


def _plan_serial(
    plan: DemoPlan,
    inst: InstrumentConfig,
    sim: AstmAnalyserSim,
    options: DemoOptions,
    words: Mapping[str, Any],
) -> str:
    """A pty pair for a serial instrument, or loopback TCP where there are none."""
    parts = urlsplit(inst.url)
    try:
        if not options.pty:
            raise TransportError("switched off for this run")
        pair = PtyPair()
    except (TransportError, OSError) as exc:
        # no pseudo-terminals here (Windows): the same analyser dialect over loopback TCP
        port = _free_port()
        why = str(exc) if isinstance(exc, TransportError) else loggable(exc)
        plan.notes.append(str(words["tcp_note"]).format(id=inst.id, why=why, port=port))
        url = f"tcp-listen://127.0.0.1:{port}"
        _plan_astm_tcp(plan, inst, sim, url)
        return url
    plan.pairs.append(pair)
    plan.astm.append(AstmDemoSim(inst.id, inst.driver, sim, PtyConnector(pair), wait_for_port=True))
    baud = parse_qs(parts.query).get("baudrate", ["9600"])[0]
    plan.links[inst.id] = f"ASTM, {words['serial']} {pair.slave_path} ({baud} Bd)"
    plan.notes.append(str(words["pty_note"]).format(id=inst.id, device=pair.slave_path, baud=baud))
    # the configured device becomes the pair's slave; the line settings stay as configured
    return f"serial://{pair.slave_path}" + (f"?{parts.query}" if parts.query else "")


# --- reconciliation and the closing summary ---------------------------------------------------


def reconcile(engine: Engine, hl7: Sequence[Hl7AnalyserSim], astm: Sequence[AstmDemoSim]) -> int:
    """Results an analyser was told were received that the gateway does not hold: must be 0.

    HL7: every observation of every message answered AA. ASTM: every message whose last frame
    the gateway ACKed must be stored as sent (raw bytes), and each observation the analyser's
    profile reads from it must be a stored result, or a stored QC result for control runs.
    A message that could not be decoded counts as kept when its raw bytes are stored
    (quarantine keeps it).
    """
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
        controls = {
            (r.instrument_id, r.test_code, r.value, r.control_lot)
            for r in conn.execute(
                select(
                    qc_results.c.instrument_id,
                    qc_results.c.test_code,
                    qc_results.c.value,
                    qc_results.c.control_lot,
                )
            )
        }
        raws = {
            (r.instrument_id, r.digest)
            for r in conn.execute(select(raw_messages.c.instrument_id, raw_messages.c.digest))
        }
    lost = 0
    for hl7_sim in hl7:
        for obs in hl7_sim.ledger.acked:
            key = (hl7_sim.options.instrument_id, obs.specimen_id, obs.test_code, obs.value)
            lost += key not in stored
    for entry in astm:
        decode = DRIVERS[entry.driver].decode
        for acked in entry.sim.ledger.acked:
            if (entry.instrument_id, digest(acked.raw)) not in raws:
                lost += max(1, len(acked.sample.values))
                continue
            message = decode(entry.instrument_id, acked.raw, acked.acked_at)
            for o in message.observations:
                if o.is_qc:
                    lost += (o.instrument_id, o.test_code, o.value, o.control_lot) not in controls
                else:
                    key = (o.instrument_id, o.specimen_id, o.test_code, o.value.strip())
                    lost += key not in stored
    return lost


def _count_by_instrument(conn: Connection, table: Any, *where: Any) -> dict[str, int]:
    query = select(table.c.instrument_id, func.count()).group_by(table.c.instrument_id)
    return {str(i): int(n) for i, n in conn.execute(query.where(*where)).all()}


def summary_dict(engine: Engine, plan: DemoPlan) -> dict[str, Any]:
    with engine.connect() as conn:
        s = summary(conn)
        received = _count_by_instrument(conn, results)
        acknowledged = _count_by_instrument(conn, results, results.c.state == "acknowledged")
        qc = _count_by_instrument(conn, qc_results)
        order_lines = int(conn.execute(select(func.count()).select_from(orders)).scalar_one())
    queries = [q for entry in plan.astm for q in entry.sim.ledger.queries if q.answered]
    sim_acked = {sim.options.instrument_id: sim.ledger.acked_messages for sim in plan.hl7}
    sim_acked |= {entry.instrument_id: len(entry.sim.ledger.acked) for entry in plan.astm}
    return {
        "received": s.received,
        "held": s.held_by_reason,
        "queued": s.by_state.get("queued", 0),
        "sent": s.by_state.get("sent", 0),
        "acknowledged": s.by_state.get("acknowledged", 0),
        "rejected": s.by_state.get("rejected", 0),
        "quarantined": s.quarantined,
        "qc": s.qc,
        "lost": reconcile(engine, plan.hl7, plan.astm),
        "orders": {
            # order lines the LIS placed on the worklist, the analysers' answered host
            # queries, and how many of those answers carried orders (the rest: "no information")
            "placed": order_lines,
            "queries_answered": len(queries),
            "answered_with_orders": sum(_has_orders(q.replies) for q in queries),
        },
        "instruments": {
            inst.id: {
                "url": inst.url,
                "received": received.get(inst.id, 0),
                "acknowledged": acknowledged.get(inst.id, 0),
                "qc": qc.get(inst.id, 0),
                # messages the simulator was told were received (what "lost" checks)
                "sim_acked": sim_acked.get(inst.id, 0),
            }
            for inst in plan.config.instruments
        },
    }


def _has_orders(replies: Sequence[bytes]) -> bool:
    """Whether the host's reply to a query carried orders (O records), not "no information"."""
    return any(r.type == "O" for reply in replies for r in parse_message(reply, lenient=True))


# --- the live view ----------------------------------------------------------------------------


def _view(gateway: Gateway, plan: DemoPlan, lis: LisSimulator, elapsed: float) -> Group:
    lang = gateway.config.site.language
    words = _WORDS[lang]
    engine = gateway.engine
    with engine.connect() as conn:
        s = summary(conn)
        qc = _count_by_instrument(conn, qc_results)
    instruments = Table(title=words["instruments"], expand=True)
    for column in words["columns"]:
        instruments.add_column(column)
    for inst in gateway.config.instruments:
        live = gateway.live.instruments.get(inst.id)
        if live is None:
            continue
        instruments.add_row(
            inst.name or inst.id,
            plan.links.get(inst.id, ""),
            f"[green]{words['yes']}[/]" if live.connected else f"[red]{words['no']}[/]",
            str(live.messages),
            str(live.results),
            str(qc.get(inst.id, 0)),
            str(live.quarantined),
        )
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
        str(s.qc),
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


# --- running ----------------------------------------------------------------------------------


def _fresh_sqlite(config: Config) -> None:
    from sqlalchemy.engine import make_url

    database = make_url(config.store.url).database
    if database:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(database + suffix).unlink()


async def _run_astm(entry: AstmDemoSim, gateway: Gateway) -> None:
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
    note = str(_WORDS[lang]["orders_note"]).format(n=len(requests), codes=" ".join(codes))
    console.print(note, highlight=False, markup=False)


async def run_demo(config: Config, options: DemoOptions, console: Console) -> dict[str, Any]:
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
        try:
            while not gateway.ready.is_set():
                if gateway_task.done():
                    gateway_task.result()  # surfaces why it could not start
                await asyncio.sleep(0.05)
            await _send_demo_orders(config, plan.orders, console)
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
                    live.update(_view(gateway, plan, lis, loop.time() - started))
                    await asyncio.sleep(0.5)
                for task in sim_tasks:
                    task.cancel()
                await asyncio.gather(*sim_tasks, return_exceptions=True)
                # let the forwarder drain what the analysers delivered
                drain_until = loop.time() + 15
                while loop.time() < drain_until:
                    live.update(_view(gateway, plan, lis, loop.time() - started))
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
    data = summary_dict(gateway.engine, plan)
    gateway.engine.dispose()
    if options.summary_json is not None:
        options.summary_json.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data
