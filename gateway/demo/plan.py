"""The demo's plan: which simulator drives which instrument, over what, and the config it runs.

Serial instruments run over pseudo-terminal pairs (``simulators.pty``): the simulator holds the
master side, the gateway opens the slave side through its ordinary ``serial://`` transport. The
plan *rewrites the instrument's URL* in the loaded config before the gateway starts: it swaps
the device path for the pair's slave (``/dev/pts/N``) and keeps the line settings (baud rate,
parity, ...). A symlink at a configured path was the other choice; it was not taken because it
needs a writable shared directory, goes stale when a run is killed, and collides when two demos
run at once (the tests do). The configured device path is what a real site would use. Where
there are no pseudo-terminals (Windows), that instrument's URL becomes a ``tcp-listen://`` port
on 127.0.0.1 instead and the screen says so.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from drivers.model import OrderAction, OrderRequest
from drivers.registry import ASTM_PROFILES
from drivers.transports import Connector, connector_for
from gateway.config import Config, InstrumentConfig
from gateway.demo.options import DemoOptions
from gateway.demo.words import WORDS
from gateway.errors import ConfigError, TransportError, loggable
from simulators.astm_analyser import AstmAnalyserSim, AstmSimOptions, PtyConnector
from simulators.hl7_analyser import AnalyserSimOptions, Hl7AnalyserSim
from simulators.national_id import make_fnr
from simulators.pty import PtyPair

#: instrument options with this prefix belong to the demo's simulators, not to the driver
SIM_OPTION_PREFIX = "sim_"
_ASTM_PROFILES = {profile.key: profile for profile in ASTM_PROFILES}


@dataclass(slots=True)
class AstmDemoSim:
    """One simulated ASTM analyser and how it reaches the gateway."""

    instrument_id: str
    driver: str
    sim: AstmAnalyserSim
    connector: Connector
    #: serial: start once the gateway has the port open (``runner._run_astm`` says why)
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
    words = WORDS[config.site.language]
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
