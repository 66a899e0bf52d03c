"""What a demo run is asked to do (`trygg demo`'s options), and the bundled demo config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "config" / "demo.toml"
#: the demo's competence records (``gateway.demo.people``)
DEMO_PEOPLE = DEMO_CONFIG.parent / "demo-people.csv"


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
    #: the competence records imported at start (None: none, every operator is unknown)
    people: Path | None = DEMO_PEOPLE
