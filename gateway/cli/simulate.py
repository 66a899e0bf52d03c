"""`trygg simulate` and `trygg lis-sim`: a simulated analyser or LIS on its own (simulators/)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated, Literal

import typer

from gateway.cli.common import console, err


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
