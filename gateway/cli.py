"""`trygg`: the command line (Typer + Rich). Every command that touches the store takes --config."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gateway.config import Config, load_config
from gateway.errors import GatewayError

if TYPE_CHECKING:
    from drivers.model import OrderRequest
    from gateway.orders.store import OrdersOutcome
    from gateway.store.writer import Tx

app = typer.Typer(
    help="Trygg: instrument-integration gateway for medical laboratories and POCT.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
results_app = typer.Typer(help="Patient results.", no_args_is_help=True)
outbox_app = typer.Typer(help="The LIS outbox.", no_args_is_help=True)
quarantine_app = typer.Typer(help="Messages that could not be decoded.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
orders_app = typer.Typer(
    help="The worklist: orders per specimen and test, answered to host queries.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.add_typer(results_app, name="results")
app.add_typer(outbox_app, name="outbox")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(audit_app, name="audit")
app.add_typer(orders_app, name="orders")

console = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="Site config (TOML).", envvar="TRYGG_CONFIG")
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _config(path: Path) -> Config:
    try:
        return load_config(path)
    except GatewayError as exc:
        err.print(f"[red]Config error[/]\n{exc}")
        raise typer.Exit(2) from exc


def _engine(config: Config) -> Any:
    from gateway.store.engine import make_engine, upgrade

    engine = make_engine(config.store.url)
    upgrade(engine)
    return engine


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def run(config: ConfigOption, verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Run the gateway until Ctrl-C."""
    from gateway.app import Gateway

    _logging(verbose)
    cfg = _config(config)
    gateway = Gateway(cfg)
    console.print(
        f"Trygg for [bold]{cfg.site.name}[/]: {len(cfg.instruments)} instrument(s), "
        f"LIS {cfg.lis.url if cfg.lis else 'none'}, web http://{cfg.web.listen}"
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(gateway.run())
    console.print("Stopped.")


@app.command()
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
) -> None:
    """Run the gateway with simulated analysers and a simulated LIS, and show the flow live."""
    from gateway.demo import DEMO_CONFIG, DemoOptions, run_demo

    logging.basicConfig(level=logging.ERROR)
    cfg = _config(config or DEMO_CONFIG)
    console.print(
        f"[bold]Trygg demo[/]: {cfg.site.title or cfg.site.name}; database {cfg.store.url}; "
        f"dashboard http://{cfg.web.listen}"
    )
    options = DemoOptions(seconds=seconds, summary_json=summary_json, rate_per_s=rate, web=web)
    try:
        data = asyncio.run(run_demo(cfg, options, console))
    except KeyboardInterrupt:
        console.print("Stopped.")
        return
    console.print()
    console.print_json(json.dumps(data))
    if data["lost"]:
        raise typer.Exit(1)


@app.command("lis-sim")
def lis_sim(
    listen: Annotated[str, typer.Option(help="host:port to listen on.")] = "127.0.0.1:2575",
    record: Annotated[
        Path | None, typer.Option(help="Append one JSON line per received message.")
    ] = None,
    ae_share: Annotated[float, typer.Option(help="Share of messages answered AE.")] = 0.0,
    ar_share: Annotated[float, typer.Option(help="Share of messages answered AR.")] = 0.0,
    delay: Annotated[float, typer.Option(help="Seconds to wait before each ACK.")] = 0.0,
    drop_share: Annotated[
        float, typer.Option(help="Share of messages answered by hanging up.")
    ] = 0.0,
    down_after: Annotated[
        int | None, typer.Option(help="Go down after this many messages...")
    ] = None,
    down_for: Annotated[float, typer.Option(help="...for this many seconds.")] = 0.0,
    validate: Annotated[
        str, typer.Option(help="fast (split only), basic (python-hl7) or hl7apy (strict).")
    ] = "basic",
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
) -> None:
    """Run the LIS simulator: validates ORU^R01, ACKs, and misbehaves on request."""
    from simulators.lis import LisSimOptions, run_lis_sim

    host, _, port = listen.rpartition(":")
    modes: dict[str, Literal["fast", "basic", "hl7apy"]] = {
        "fast": "fast",
        "basic": "basic",
        "hl7apy": "hl7apy",
    }
    if validate not in modes:
        err.print("--validate must be fast, basic or hl7apy")
        raise typer.Exit(2)
    mode = modes[validate]
    options = LisSimOptions(
        host=host or "127.0.0.1",
        port=int(port),
        record=record,
        ae_share=ae_share,
        ar_share=ar_share,
        delay_s=delay,
        drop_share=drop_share,
        down_after=down_after,
        down_for_s=down_for,
        validate=mode,
        seed=seed,
    )
    console.print(f"LIS simulator on {listen}" + (f", recording to {record}" if record else ""))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_lis_sim(options))


@app.command()
def simulate(
    connect: Annotated[
        str | None, typer.Option(help="Gateway listener host:port (TCP; HL7 needs it).")
    ] = None,
    instrument: Annotated[str, typer.Option(help="Instrument id the simulator claims.")] = "sim-1",
    rate: Annotated[float, typer.Option(help="Messages (ASTM: samples) per second.")] = 2.0,
    count: Annotated[int | None, typer.Option(help="Stop after this many messages.")] = None,
    invalid_id_share: Annotated[float, typer.Option()] = 0.03,
    seed: Annotated[int | None, typer.Option()] = None,
    protocol: Annotated[str, typer.Option(help="hl7 or astm.")] = "hl7",
    profile: Annotated[
        str, typer.Option(help="ASTM: the analyser, a key from `trygg drivers`.")
    ] = "astm_generic",
    serial_pty: Annotated[
        bool,
        typer.Option(
            "--serial-pty",
            help="ASTM: serve on a new pseudo-terminal pair; prints the serial:// URL to "
            "give the gateway.",
        ),
    ] = False,
    baudrate: Annotated[int, typer.Option(help="ASTM --serial-pty: baud rate in the URL.")] = 9600,
    qc_share: Annotated[float, typer.Option(help="ASTM: share of runs that are QC.")] = 0.1,
    operators: Annotated[
        str, typer.Option(help="ASTM: the analyser's operator IDs, comma separated.")
    ] = "OP1",
) -> None:
    """Run a simulated analyser: HL7 to a gateway listener, or ASTM over TCP or a serial pty."""
    if protocol not in ("hl7", "astm"):
        err.print("--protocol must be hl7 or astm")
        raise typer.Exit(2)
    if protocol == "hl7":
        from simulators.hl7_analyser import AnalyserSimOptions, Hl7AnalyserSim

        if connect is None:
            err.print("HL7 needs --connect host:port")
            raise typer.Exit(2)
        host, _, port = connect.rpartition(":")
        sim = Hl7AnalyserSim(
            AnalyserSimOptions(
                instrument_id=instrument,
                host=host,
                port=int(port),
                rate_per_s=rate,
                max_messages=count,
                invalid_id_share=invalid_id_share,
                seed=seed,
            )
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(sim.run())
        ledger = sim.ledger
        console.print(
            f"sent {ledger.sent_messages} message(s), {ledger.acked_messages} acknowledged, "
            f"{ledger.error_acks} answered with an error"
        )
        return

    from drivers.registry import ASTM_PROFILES
    from drivers.transports import Connector, connector_for
    from simulators.astm_analyser import AstmAnalyserSim, AstmSimOptions, PtyConnector
    from simulators.pty import PtyPair

    profiles = {p.key: p for p in ASTM_PROFILES}
    if profile not in profiles:
        err.print(f"--profile must be one of: {', '.join(sorted(profiles))}")
        raise typer.Exit(2)
    if serial_pty == (connect is not None):
        err.print("ASTM needs one of --connect host:port and --serial-pty")
        raise typer.Exit(2)
    astm = AstmAnalyserSim(
        profiles[profile],
        AstmSimOptions(
            seed=seed,
            count=count,
            rate_per_s=rate,
            qc_share=qc_share,
            operator_ids=tuple(op.strip() for op in operators.split(",") if op.strip()),
            invalid_patient_share=invalid_id_share,
            # like a real analyser, keep each result until the host takes it: the gateway
            # may open the serial port long after the simulator starts
            max_attempts=1_000_000,
        ),
    )
    pair: PtyPair | None = None
    connector: Connector
    if serial_pty:
        pair = PtyPair()
        connector = PtyConnector(pair)
        console.print(f"{profiles[profile].name} on a pseudo-terminal; give the gateway this URL:")
        console.print(pair.url(baudrate), highlight=False, markup=False, soft_wrap=True)
    else:
        connector = connector_for(f"tcp://{connect}")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(astm.run(connector))
    finally:
        if pair is not None:
            pair.close()
    astm_ledger = astm.ledger
    console.print(
        f"{len(astm_ledger.acked)} sample(s) acknowledged by the gateway, "
        f"{len(astm_ledger.failures)} failed attempt(s), {len(astm_ledger.abandoned)} abandoned"
    )


@app.command("check-config")
def check_config(config: ConfigOption) -> None:
    """Validate a config file; errors name the file, the key and the problem."""
    cfg = _config(config)
    console.print(
        f"[green]OK[/] {config}: site {cfg.site.name}, {len(cfg.instruments)} instrument(s), "
        f"{len(cfg.tests)} test mapping(s), LIS {cfg.lis.url if cfg.lis else 'none'}, "
        f"MQTT {cfg.mqtt.url if cfg.mqtt else 'off'}"
    )


@app.command("drivers")
def list_drivers(as_json: JsonFlag = False) -> None:
    """List the registered driver keys."""
    from drivers.registry import DRIVERS

    rows: list[dict[str, Any]] = [
        {"key": s.key, "protocol": s.protocol, "roles": list(s.roles), "description": s.description}
        for s in DRIVERS.values()
    ]
    if as_json:
        _print_json(rows)
        return
    table = Table("driver", "protocol", "roles", "description")
    for row in rows:
        table.add_row(row["key"], row["protocol"], ", ".join(row["roles"]), row["description"])
    console.print(table)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption) -> None:
    """Create or migrate the database schema to the newest version."""
    cfg = _config(config)
    _engine(cfg).dispose()
    console.print(f"[green]Database is up to date[/]: {cfg.store.url}")


@results_app.command("list")
def results_list(
    config: ConfigOption,
    state: Annotated[str | None, typer.Option(help="Only this state.")] = None,
    instrument: Annotated[str | None, typer.Option(help="Only this instrument.")] = None,
    limit: Annotated[int, typer.Option(help="Newest N.")] = 50,
    show_patient: Annotated[
        bool, typer.Option("--show-patient-id", help="Show full patient IDs.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List recent results with their state and holds (patient IDs masked)."""
    from gateway.catalogue import has, text
    from gateway.store.queries import list_results

    def reason_label(code: str) -> str:  # a code this version does not know: as it is
        key = f"reason.{code}"
        return text("en", key) if has("en", key) else code

    engine = _engine(_config(config))
    with engine.connect() as conn:
        rows = list_results(
            conn, state=state, instrument=instrument, limit=limit, show_patient=show_patient
        )
    if as_json:
        _print_json(rows)
        return
    table = Table(
        "id", "instrument", "test", "value", "unit", "state", "holds", "operator", "patient"
    )
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["instrument"],
            r["test"],
            r["value"],
            r["unit"],
            r["state"],
            ", ".join(reason_label(h["reason"]) for h in r["holds"] if not h["released"]),
            r["operator"],
            r["patient_id"],
        )
    console.print(table)


@results_app.command("show")
def results_show(
    result_id: int,
    config: ConfigOption,
    show_patient: Annotated[bool, typer.Option("--show-patient-id")] = False,
) -> None:
    """Show one result with its holds and outbox messages (JSON)."""
    from gateway.store.queries import get_result

    engine = _engine(_config(config))
    with engine.connect() as conn:
        data = get_result(conn, result_id, show_patient=show_patient)
    if data is None:
        err.print(f"No result {result_id}")
        raise typer.Exit(1)
    _print_json(data)


@results_app.command("release")
def results_release(
    result_id: int,
    config: ConfigOption,
    by: Annotated[str, typer.Option("--by", help="Your name or user ID (audit log).")],
    note: Annotated[str, typer.Option("--note", help="Why it may go out.")] = "",
) -> None:
    """Release a held result after checking it; it is then queued for the LIS."""
    from gateway.holds import release
    from gateway.store.writer import run_in_transaction

    engine = _engine(_config(config))
    outcome = run_in_transaction(
        engine, functools.partial(release, result_id=result_id, actor=by, note=note)
    )
    if not outcome.released:
        err.print(f"[red]Not released[/]: result {result_id}: {outcome.detail}")
        raise typer.Exit(1)
    console.print(f"[green]Result {result_id}[/]: {outcome.detail}; queued for the LIS")


@outbox_app.command("status")
def outbox_status_cmd(
    config: ConfigOption,
    state: Annotated[
        str | None, typer.Option(help="Only pending, sent, acknowledged or rejected.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Newest N messages.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Show the LIS outbox: counts by state and the newest messages (--json: an array)."""
    from gateway.store.queries import outbox_messages, outbox_status

    engine = _engine(_config(config))
    with engine.connect() as conn:
        data = outbox_status(conn, limit=0)
        messages = outbox_messages(conn, state=state, limit=limit)
    if as_json:
        _print_json(messages)
        return
    console.print(f"Counts: {data['counts']}  oldest waiting: {data['oldest_waiting_at']}")
    table = Table("id", "control id", "state", "results", "attempts", "ack", "text")
    for m in messages:
        table.add_row(
            str(m["id"]),
            m["control_id"],
            m["state"],
            str(m["results"]),
            str(m["attempts"]),
            m["ack_code"],
            m["ack_text"],
        )
    console.print(table)


@quarantine_app.command("list")
def quarantine_list(
    config: ConfigOption,
    state: Annotated[str | None, typer.Option(help="open, replayed or discarded.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List quarantined messages with the error that stopped them."""
    from gateway.store.queries import list_quarantine

    engine = _engine(_config(config))
    with engine.connect() as conn:
        rows = list_quarantine(conn, state=state)
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "instrument", "received", "field", "reason", "state", "bytes")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["instrument"],
            r["received_at"],
            r["field"],
            r["reason_text"],
            r["state"],
            str(r["bytes"]),
        )
    console.print(table)


@quarantine_app.command("show")
def quarantine_show(quarantine_id: int, config: ConfigOption) -> None:
    """Show one quarantined message: the error and a hexdump of the bytes as received."""
    from sqlalchemy import select

    from gateway.store.tables import quarantine, raw_messages
    from gateway.texts import quarantine_code, quarantine_text

    engine = _engine(_config(config))
    with engine.connect() as conn:
        row = conn.execute(
            select(quarantine, raw_messages.c.raw)
            .join(raw_messages, raw_messages.c.id == quarantine.c.raw_message_id)
            .where(quarantine.c.id == quarantine_id)
        ).first()
    if row is None:
        err.print(f"No quarantine entry {quarantine_id}")
        raise typer.Exit(1)
    console.print(
        f"[bold]#{row.id}[/] {row.instrument_id} {row.received_at.isoformat()} state={row.state}"
    )
    reason, params = quarantine_code(row._mapping)
    console.print(f"reason: {quarantine_text('en', reason, params)} ({reason})")
    console.print(f"field: {row.field or '-'}\nerror: {row.error}\n")
    raw = bytes(row.raw)
    for offset in range(0, len(raw), 16):
        chunk = raw[offset : offset + 16]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        console.print(f"{offset:08x}  {chunk.hex(' '):<47}  {text}", highlight=False, markup=False)


@quarantine_app.command("replay")
def quarantine_replay(
    config: ConfigOption,
    quarantine_id: Annotated[int | None, typer.Argument(help="Entry to replay.")] = None,
    all_open: Annotated[bool, typer.Option("--all", help="Replay every open entry.")] = False,
    by: Annotated[str, typer.Option("--by", help="Who replays (for the audit log).")] = "cli",
) -> None:
    """Decode quarantined messages again (after a driver fix) and ingest those that now decode."""
    from sqlalchemy import select

    from gateway.quarantine import replay
    from gateway.rules import context_from_config
    from gateway.store.tables import quarantine
    from gateway.store.writer import run_in_transaction

    cfg = _config(config)
    engine = _engine(cfg)
    if all_open:
        with engine.connect() as conn:
            ids = list(
                conn.execute(select(quarantine.c.id).where(quarantine.c.state == "open")).scalars()
            )
    elif quarantine_id is not None:
        ids = [quarantine_id]
    else:
        err.print("Give a quarantine id or --all")
        raise typer.Exit(2)
    context = context_from_config(cfg)
    failures = 0
    for qid in ids:
        outcome = run_in_transaction(
            engine,
            functools.partial(replay, quarantine_id=qid, config=cfg, context=context, actor=by),
        )
        failures += not outcome.ok
        console.print(
            f"#{qid}: {'[green]replayed[/]' if outcome.ok else '[red]not replayed[/]'}"
            f" {outcome.detail}"
        )
    if failures:
        raise typer.Exit(1)


@audit_app.command("verify")
def audit_verify(config: ConfigOption, as_json: JsonFlag = False) -> None:
    """Recompute the audit hash chain; exit 1 when it is broken."""
    from gateway.store.audit import verify

    engine = _engine(_config(config))
    with engine.connect() as conn:
        report = verify(conn)
    if as_json:
        _print_json(asdict(report))
    elif report.ok:
        console.print(f"[green]Audit chain intact[/]: {report.rows} rows")
    else:
        console.print(
            f"[red]Audit chain BROKEN[/] at row {report.first_bad_id}: {report.problem} "
            f"({report.rows} rows read)"
        )
    if not report.ok:
        raise typer.Exit(1)


# --- the worklist ------------------------------------------------------------------------------

ORDER_STATES = ("open", "cancelled", "all")
#: widths of the `orders` and `audit` columns the hand-entered values go to
SPECIMEN_MAX = TEST_MAX = PLACER_MAX = ACTOR_MAX = 64
PATIENT_MAX = 32
#: HL7 and ASTM delimiters: the worklist answers host queries, so its values must not carry them
DELIMITERS = frozenset("|^~\\&")


def _checked(value: str, name: str, max_length: int, *, required: bool = True) -> str:
    """``value`` stripped, or exit 2 naming ``name``; the value is never echoed (patient IDs)."""
    text = value.strip()
    problem = ""
    if required and not text:
        problem = "must not be empty"
    elif len(text) > max_length:
        problem = f"is longer than {max_length} characters"
    elif any(not char.isprintable() or char in DELIMITERS for char in text):
        problem = "may not contain control characters or the delimiters | ^ ~ \\ &"
    if problem:
        err.print(f"{name} {problem}", markup=False, highlight=False)
        raise typer.Exit(2)
    return text


def _test_codes(values: list[str] | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(_checked(value, "TEST", TEST_MAX) for value in values or ()))


def _priority(value: str) -> str:
    from drivers.model import PRIORITIES

    code = value.strip().upper()
    if code not in PRIORITIES:
        err.print("--priority must be S (stat), A (as soon as possible) or R (routine)")
        raise typer.Exit(2)
    return code


def _note_unknown_tests(cfg: Config, codes: tuple[str, ...]) -> None:
    """A hand-typed code the site has no mapping for is most likely a typo: say so."""
    known = {test.code for test in cfg.tests}
    unknown = [code for code in codes if code not in known]
    if known and unknown:
        err.print(
            f"Note: not a test code in the config: {', '.join(unknown)}; check the spelling",
            markup=False,
            highlight=False,
        )


def _open_lines(tx: Tx, specimen_id: str) -> frozenset[str]:
    """The specimen's open test codes."""
    from gateway.orders.store import open_orders

    return frozenset(
        code for order in open_orders(tx.conn, specimen_id) for code in order.test_codes
    )


def _place_by_hand(
    tx: Tx, request: OrderRequest, actor: str
) -> tuple[frozenset[str], OrdersOutcome | None]:
    """Place ``request``; refused (None) when the specimen is open for another patient."""
    from gateway.orders.store import OrderConflict, apply_orders

    open_before = _open_lines(tx, request.specimen_id)
    try:
        return open_before, apply_orders(tx, [request], actor=actor, reason="placed by hand")
    except OrderConflict:
        return open_before, None


def _cancel_by_hand(
    tx: Tx, request: OrderRequest, actor: str, reason: str
) -> tuple[frozenset[str], OrdersOutcome]:
    from gateway.orders.store import apply_orders

    return _open_lines(tx, request.specimen_id), apply_orders(
        tx, [request], actor=actor, reason=reason
    )


def _local_minute(value: str, zone: ZoneInfo) -> str:
    return datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M")


@orders_app.command("list")
def orders_list(
    config: ConfigOption,
    state: Annotated[str, typer.Option(help="open, cancelled or all.")] = "open",
    limit: Annotated[int, typer.Option(min=1, help="Newest N order lines.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List order lines (one per specimen and test), newest first; patient IDs masked."""
    from gateway.orders.store import list_orders

    if state not in ORDER_STATES:
        err.print("--state must be open, cancelled or all")
        raise typer.Exit(2)
    cfg = _config(config)
    engine = _engine(cfg)
    with engine.connect() as conn:
        rows = list_orders(conn, state=None if state == "all" else state, limit=limit)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        console.print("No order lines." if state == "all" else f"No {state} order lines.")
        return
    zone = ZoneInfo(cfg.site.timezone)
    # compact; the masked patient ID and the time never fold, the other columns may
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), caption=f"Times in {zone.key}.")
    for header in ("id", "specimen", "test", "prio", "patient", "state", "result", "placed", "by"):
        table.add_column(header, overflow="fold", no_wrap=header in ("patient", "placed"))
    for row in rows:
        table.add_row(
            str(row["id"]),
            escape(row["specimen_id"]),
            escape(row["test_code"]),
            row["priority"],
            row["patient"] or "-",
            row["state"],
            "yes" if row["resulted"] else "no",
            _local_minute(row["placed_at"], zone),
            escape(row["placed_by"]),
        )
    console.print(table)


@orders_app.command("add")
def orders_add(
    specimen: Annotated[
        str, typer.Argument(metavar="SPECIMEN", help="Specimen ID (the tube's barcode).")
    ],
    tests: Annotated[
        list[str], typer.Argument(metavar="TEST...", help="Test codes, as the analyser knows them.")
    ],
    config: ConfigOption,
    by: Annotated[str, typer.Option("--by", help="Your name or user ID (audit log).")],
    patient: Annotated[
        str, typer.Option("--patient", help="Patient ID (fødselsnummer, D-number).")
    ] = "",
    priority: Annotated[str, typer.Option(help="S stat, A as soon as possible, R routine.")] = "R",
    placer: Annotated[str, typer.Option("--placer", help="The LIS's order number.")] = "",
) -> None:
    """Place an order by hand: the analyser gets these tests when it asks for the specimen."""
    from drivers.model import OrderAction, OrderRequest
    from gateway.national_id import mask
    from gateway.store.writer import run_in_transaction

    request = OrderRequest(
        OrderAction.NEW,
        _checked(specimen, "SPECIMEN", SPECIMEN_MAX),
        _test_codes(tests),
        patient_id=_checked(patient, "--patient", PATIENT_MAX, required=False),
        priority=_priority(priority),
        placer_order=_checked(placer, "--placer", PLACER_MAX, required=False),
    )
    actor = _checked(by, "--by", ACTOR_MAX)
    cfg = _config(config)
    _note_unknown_tests(cfg, request.test_codes)
    engine = _engine(cfg)
    open_before, outcome = run_in_transaction(
        engine, functools.partial(_place_by_hand, request=request, actor=actor)
    )
    name = escape(request.specimen_id)
    if outcome is None:
        err.print(
            f"[red]Not placed[/]: specimen {name} has open orders for another patient; "
            "check the barcode, or cancel those orders first"
        )
        raise typer.Exit(1)
    placed = [code for code in request.test_codes if code not in open_before]
    already = [code for code in request.test_codes if code in open_before]
    if placed:
        who = f", patient {mask(request.patient_id)}" if request.patient_id else ""
        console.print(
            f"[green]Placed[/] {len(placed)} test(s) for specimen {name}: "
            f"{escape(', '.join(placed))} (priority {request.priority}{who})"
        )
    if already:
        console.print(f"Already open, not placed again: {escape(', '.join(already))}")


@orders_app.command("cancel")
def orders_cancel(
    specimen: Annotated[str, typer.Argument(metavar="SPECIMEN", help="Specimen ID.")],
    config: ConfigOption,
    by: Annotated[str, typer.Option("--by", help="Your name or user ID (audit log).")],
    tests: Annotated[
        list[str] | None,
        typer.Argument(metavar="[TEST]...", help="Tests to cancel (none: every open test)."),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (audit log).")] = "",
) -> None:
    """Cancel open orders of a specimen; exit 1 when nothing was open."""
    from drivers.model import OrderAction, OrderRequest
    from gateway.store.writer import run_in_transaction

    request = OrderRequest(
        OrderAction.CANCEL, _checked(specimen, "SPECIMEN", SPECIMEN_MAX), _test_codes(tests)
    )
    actor = _checked(by, "--by", ACTOR_MAX)
    engine = _engine(_config(config))
    open_before, outcome = run_in_transaction(
        engine,
        functools.partial(
            _cancel_by_hand,
            request=request,
            actor=actor,
            reason=reason.strip() or "cancelled by hand",
        ),
    )
    name = escape(request.specimen_id)
    targets = request.test_codes or tuple(sorted(open_before))
    cancelled = [code for code in targets if code in open_before]
    not_open = [code for code in targets if code not in open_before]
    if not outcome.cancelled:
        asked = f" for {escape(', '.join(not_open))}" if not_open else ""
        err.print(f"[red]Nothing cancelled[/]: specimen {name} has no open order{asked}")
        raise typer.Exit(1)
    console.print(
        f"[green]Cancelled[/] {outcome.cancelled} test(s) of specimen {name}: "
        f"{escape(', '.join(cancelled))}"
    )
    if not_open:
        console.print(f"Not open, nothing to cancel: {escape(', '.join(not_open))}")


def main() -> None:
    try:
        app()
    except GatewayError as exc:
        err.print(f"[red]Error:[/] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
