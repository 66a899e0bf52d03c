"""Protocol cores, analyser profiles and simulator models stay free of I/O (ARCHITECTURE.md, 1).

Two checks per module: importing it, alone in a fresh interpreter, pulls in no I/O library
(transitively); and its own source imports neither ``socket`` nor ``time`` (time is an
argument to the cores, never read by them).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IO_LIBRARIES = ("asyncio", "serial", "serial_asyncio_fast", "sqlalchemy", "aiomqtt")
SANS_IO = (
    "drivers.protocols.hl7.mllp",
    "drivers.protocols.hl7.ack",
    "drivers.protocols.hl7.message",
    "drivers.protocols.hl7.orders",
    "drivers.protocols.astm.frames",
    "drivers.protocols.astm.records",
    "drivers.protocols.astm.datetimes",
    "drivers.protocols.astm.assembler",
    "drivers.protocols.astm.query",
    "drivers.protocols.astm.link",
    "drivers.protocols.astm.events",
    "drivers.protocols.astm.symbolic",
    "drivers.analysers.site",
    "drivers.analysers.astm_base",
    "drivers.analysers.astm_messages",
    "drivers.analysers.profiles.astm_generic",
    "drivers.analysers.profiles.afinion2",
    "drivers.analysers.profiles.dca_vantage",
    "drivers.analysers.profiles.clinitek_status",
    "drivers.analysers.profiles.sysmex_xn",
    "drivers.analysers.profiles.yumizen_h500",
    "drivers.analysers.profiles.hl7_generic",
    "simulators.astm_models",
    "simulators.astm_models.sample",
    "simulators.astm_models.records",
    "simulators.astm_models.blood_count",
    "simulators.astm_models.astm_generic",
    "simulators.astm_models.afinion2",
    "simulators.astm_models.dca_vantage",
    "simulators.astm_models.clinitek_status",
    "simulators.astm_models.sysmex_xn",
    "simulators.astm_models.yumizen_h500",
    "drivers.model",
    "drivers.errors",
)


@pytest.mark.parametrize("module", SANS_IO)
def test_importing_pulls_in_no_io_library(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {IO_LIBRARIES!r}]\n"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("module", [m for m in SANS_IO if ".protocols." in m])
def test_a_core_reads_no_clock_and_opens_no_socket(module: str) -> None:
    source = Path(str(importlib.import_module(module).__file__)).read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert not imported & {"socket", "time", *IO_LIBRARIES}, (module, imported)
