"""Interoperability with an independent ASTM implementation: astm-2025, a python-astm fork.

(a) Its ``astm.client.Client`` (instrument role) sends results over TCP to our gateway's ASTM
    host driver (``astm_generic``); they must arrive stored, byte for byte, and decoded.
(b) Our ``AstmAnalyserSim`` sends to its ``astm.server.Server`` (host role), whose decoded
    records must be the records we meant.

The peer runs in a child process (its socket loop is a blocking asyncore fork with global
state). Defects of astm-2025 1.0.0 met on the way, paths under site-packages/astm/:

* asynclib.py:909 ``bdata = buffer(data, 0, obs)``: ``buffer`` is Python 2 only, so every
  push of data raises NameError and the channel closes; as shipped neither its client nor its
  server can send a byte on Python 3. The child adds the missing name (a slice) when it is
  absent; nothing else of the peer is touched.
* codec.py:255 and 271 ``isinstance(x, Iterable)`` is true for ``str``, so encoding a record
  with any str value recurses until RecursionError; values must be bytes (its own
  ``HeaderRecord().to_astm()`` cannot be encoded). With a bytes record type the
  ``record[0] == 'L'`` checks (client.py:136 and 148) never match, so it sends one record per
  frame and ends the session only when its emitter is exhausted; bulk mode is unusable.
* codec.py:334: a record whose frame is exactly ``chunk_size + 1`` bytes goes out as one frame
  numbered one too high (and one byte over the size); a strict host NAKs it, and the client
  does not retransmit a NAKed frame (client.py:321 hands the NAK to the emitter, which moves
  on to the next record): that record is lost unless the caller's emitter resends it.
* asynclib.py:799 ``self._input_buffer = ''`` (str): a frame that arrives in two reads makes
  the next read raise TypeError and the server drops the connection. Over TCP each of our
  frames is one write and arrives whole; over a real serial line it would not.
* Its server ACKs a frame whose checksum is wrong (codec.py:108 only logs a warning) and never
  checks frame numbers; it reads H.2 as data, not as the delimiters (they are fixed).

The other python-astm fork on PyPI, astmio 1.0.0a3, is no peer here: astm/__init__.py:22
imports astm.protocol, which its wheel does not ship (so ``import astm`` fails);
client.py:93 passes ``chunk_size=`` to codec.encode, which codec.py:164 lacks (TypeError on
every send); server.py:155 reads a frame with ``readuntil(b"\\r")``, which stops at the first
record separator inside the frame. ``python -m bench astm`` still measures its codec.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import inspect
import json
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from drivers.analysers.profiles.astm_generic import GENERIC
from drivers.protocols.astm.records import Record, parse_message
from drivers.transports import connector_for
from gateway.app import Gateway
from gateway.store.tables import qc_results, quarantine, raw_messages, results
from simulators.astm_analyser import AstmAnalyserSim, AstmSimOptions
from simulators.national_id import make_fnr
from tests.integration.helpers import free_port, gateway_config, make_config

REPO = Path(__file__).resolve().parents[2]
WAIT = 30.0

pytestmark = pytest.mark.timeout(60)


def _peer_installed() -> bool:
    try:
        importlib.metadata.version("astm-2025")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_peer = pytest.mark.skipif(not _peer_installed(), reason="astm-2025 is not installed")

# --- the peer's programs, run in a child with `python -c` (their source, then a call) ----------


def _peer_client_program() -> None:
    """astm-2025's Client sends the job's records to 127.0.0.1:port; prints what it framed."""
    import json
    import sys
    import time

    from astm import asynclib, client, codec

    if "buffer" not in vars(asynclib):  # asynclib.py:909 calls Python 2's buffer()
        asynclib.buffer = lambda data, offset, size: data[offset : offset + size]
    job = json.load(sys.stdin)

    def peer_value(value: Any) -> Any:
        """JSON -> the peer's record model: bytes values, lists of components or repeats."""
        if isinstance(value, list):
            return [peer_value(v) for v in value]
        return None if value is None else value.encode("latin-1")

    messages = [[peer_value(field) for field in record] for record in job["records"]]
    acks: list[bool] = []
    done = [False]

    def emitter() -> Any:
        for record in messages:
            acks.append(bool((yield record)))
        done[0] = True

    peer = client.Client(
        emitter, "127.0.0.1", job["port"], flow_map=None, chunk_size=job["chunk_size"]
    )
    deadline = time.monotonic() + 20
    while peer.connected or not done[0]:
        asynclib.loop(timeout=0.01, count=1)
        if time.monotonic() > deadline:
            raise SystemExit("astm-2025 client did not finish")
    wire = [codec.encode_record(r, "latin-1").decode("latin-1") for r in messages]
    sys.stdout.write(json.dumps({"acks": acks, "wire": wire}) + "\n")


def _peer_server_program() -> None:
    """astm-2025's Server on a free port: prints PORT, then each message's records as JSON."""
    import json
    import select
    import sys

    from astm import asynclib, server

    if "buffer" not in vars(asynclib):  # asynclib.py:909 calls Python 2's buffer()
        asynclib.buffer = lambda data, offset, size: data[offset : offset + size]
    records: list[Any] = []

    class Printing(server.BaseRecordsDispatcher):  # type: ignore[misc]
        def _default_handler(self, record: Any) -> None:
            records.append(record)
            if record[0] == "L":
                sys.stdout.write(json.dumps(records) + "\n")
                sys.stdout.flush()
                records.clear()

    host = server.Server("127.0.0.1", 0, dispatcher=Printing)
    sys.stdout.write(f"PORT {host.socket.getsockname()[1]}\n")
    sys.stdout.flush()
    while not select.select([sys.stdin], [], [], 0)[0] or sys.stdin.read(1):
        asynclib.loop(timeout=0.01, count=1)  # serve until the test closes our stdin


def _program(function: Any) -> list[str]:
    source = inspect.getsource(function)
    return [sys.executable, "-c", f"from typing import Any\n{source}\n{function.__name__}()\n"]


async def run_peer_client(port: int, records: list[list[Any]], chunk_size: int) -> dict[str, Any]:
    """Run astm-2025's client against ``port`` until it has sent ``records``; its report."""
    child = await asyncio.create_subprocess_exec(
        *_program(_peer_client_program),
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    job = {"port": port, "records": records, "chunk_size": chunk_size}
    try:
        async with asyncio.timeout(WAIT):
            out, err = await child.communicate(json.dumps(job).encode())
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == 0, err.decode(errors="replace")[-2000:]
    report: dict[str, Any] = json.loads(out)
    return report


@contextlib.asynccontextmanager
async def peer_server() -> AsyncIterator[tuple[int, asyncio.StreamReader]]:
    """astm-2025's server in a child: yields its port and the stream of decoded messages."""
    child = await asyncio.create_subprocess_exec(
        *_program(_peer_server_program),
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stdin is not None
    try:
        async with asyncio.timeout(WAIT):
            line = await child.stdout.readline()
        assert line.startswith(b"PORT "), line
        yield int(line.split()[1]), child.stdout
    finally:
        child.stdin.close()
        try:
            async with asyncio.timeout(10):
                await child.wait()
        except TimeoutError:
            child.kill()
            await child.wait()


# --- (a) the peer's client -> our gateway ------------------------------------------------------

#: 09:30 in Oslo on 14 March 2025 (CET, UTC+1)
PERFORMED = "20250314093000"
PERFORMED_UTC = datetime(2025, 3, 14, 8, 30, tzinfo=UTC)


def make_fnr_for(seed: int) -> str:
    return make_fnr(random.Random(seed))


def peer_records(specimen: str, patient: str, tests: list[tuple[str, str, str]]) -> list[Any]:
    """One H..L message in the peer's record model: fields are strings, lists of components."""
    header = ["H", "\\^&", "", "", ["PEER-ANALYSER", "2.1", "SN4711"]]
    header += [""] * 6 + ["P", "LIS2-A2", PERFORMED]
    order = ["O", "1", specimen, "", [["", "", "", code] for code, _, _ in tests], "R"]
    order += [""] * 5 + ["N"]
    out: list[Any] = [header, ["P", "1", patient], order]
    for n, (code, value, unit) in enumerate(tests, start=1):
        result = ["R", str(n), ["", "", "", code], value, unit, "3.5-6.1", "H", "", "F"]
        result += ["", "op07", "", PERFORMED, "SN4711"]
        out.append(result)
    out += [["C", "1", "I", ["haemolysed", "repeat advised"], "G"], ["L", "1", "N"]]
    return out


def qc_records() -> list[Any]:
    """A QC message: the generic profile reads O.3 ``control^lot^level`` and O.12 ``Q``."""
    header = ["H", "\\^&", "", "", ["PEER-ANALYSER", "2.1", "SN4711"]]
    header += [""] * 6 + ["P", "LIS2-A2", PERFORMED]
    order = ["O", "1", ["CTRL-HI", "LOT4711", "2"], "", ["", "", "", "GLU"], "R"]
    order += [""] * 5 + ["Q"]
    result = ["R", "1", ["", "", "", "GLU"], "15.2", "mmol/L", "", "N", "", "F", ""]
    result += ["op07", "", PERFORMED]
    return [header, ["P", "1"], order, result, ["L", "1", "N"]]


@pytest.fixture
def gateway(sqlite_url: str) -> Iterator[tuple[Gateway, int]]:
    """Our gateway with one ASTM instrument (generic LIS2-A2) listening on TCP."""
    port = free_port()
    data = gateway_config(sqlite_url, [], lis_port=None)
    data["instruments"] = [
        {"id": "peer-astm", "driver": "astm_generic", "url": f"tcp-listen://127.0.0.1:{port}"}
    ]
    made = Gateway(make_config(data))
    yield made, port
    made.engine.dispose()


@contextlib.asynccontextmanager
async def running(gateway: Gateway, port: int) -> AsyncIterator[None]:
    """Run the gateway until the block ends; enter the block once its ASTM port listens."""
    task = asyncio.create_task(gateway.run())
    try:
        async with asyncio.timeout(WAIT):
            while not _listening(port):
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _listening(port: int) -> bool:
    """Whether 127.0.0.1:port is in LISTEN state (read from /proc: a probe would connect)."""
    with open("/proc/net/tcp", encoding="ascii") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return any(row[1] == f"0100007F:{port:04X}" and row[3] == "0A" for row in rows)


@needs_peer
async def test_peer_client_results_are_stored_and_decoded_by_our_gateway(
    gateway: tuple[Gateway, int],
) -> None:
    gw, port = gateway
    patients = [
        ("1000000001", make_fnr_for(1), [("GLU", "7.9", "mmol/L"), ("CRP", "12", "mg/L")]),
        ("1000000002", make_fnr_for(2), [("HBA1C", "48", "mmol/mol")]),
        ("1000000003", make_fnr_for(3), [("HGB", "13.4", "g/dL"), ("ALB", "41", "g/L")]),
    ]
    messages = [peer_records(*p) for p in patients] + [qc_records()]
    records = [record for message in messages for record in message]
    async with running(gw, port):
        # 64-byte frames: long records go out as ETB frames, and frame numbers wrap past 7
        report = await run_peer_client(port, records, chunk_size=64)
        assert report["acks"] == [True] * len(records)
        with gw.engine.connect() as conn:
            raws = conn.execute(select(raw_messages).order_by(raw_messages.c.id)).all()
            stored = conn.execute(select(results).order_by(results.c.id)).all()
            qc = conn.execute(select(qc_results)).all()
            quarantined = conn.execute(select(quarantine)).all()

    # stored byte for byte as the peer encoded them: one raw message per H..L
    wire = iter(report["wire"])
    expected_raw = [
        "".join(next(wire) + "\r" for _ in message).encode("latin-1") for message in messages
    ]
    assert [bytes(r.raw) for r in raws] == expected_raw
    assert {(r.instrument_id, r.protocol, r.outcome) for r in raws} == {
        ("peer-astm", "astm-e1394", "stored")
    }
    assert quarantined == []
    # and decoded: every value where the generic LIS2-A2 profile reads it
    got = [
        (
            r.specimen_id,
            r.patient_id,
            r.test_code,
            r.value,
            r.unit,
            r.reference_range,
            r.abnormal_flags,
            r.operator_id,
            r.instrument_serial,
            r.result_status,
            r.performed_at.astimezone(UTC),
        )
        for r in stored
    ]
    assert got == [
        (specimen, patient, code, value, unit, "3.5-6.1", "H", "op07", "SN4711", "F", PERFORMED_UTC)
        for specimen, patient, tests in patients
        for code, value, unit in tests
    ]
    # the C record after a message's last result is that result's comment (components joined)
    assert [r.comment for r in stored] == [
        "haemolysed repeat advised" if n == len(tests) else ""
        for _, _, tests in patients
        for n in range(1, len(tests) + 1)
    ]
    assert [(q.test_code, q.value, q.control_lot, q.control_level) for q in qc] == [
        ("GLU", "15.2", "LOT4711", "2")
    ]


# --- (b) our simulator -> the peer's server ---------------------------------------------------


def peer_shape(record: Record) -> list[Any]:
    """Our parsed record in the shape astm-2025 decodes to (None for empty, lists for parts)."""
    shaped: list[Any] = [record.type]
    for field in record.fields:
        if len(field) > 1:
            shaped.append([[c or None for c in repeat] for repeat in field])
        elif len(field[0]) > 1:
            shaped.append([c or None for c in field[0]])
        else:
            shaped.append(field[0][0] or None)
    return shaped


@needs_peer
@pytest.mark.parametrize("max_text", [240, 50], ids=["standard-frames", "short-frames"])
async def test_our_simulator_results_are_decoded_by_the_peer_server(max_text: int) -> None:
    options = AstmSimOptions(seed=max_text, count=4, qc_share=0.25, max_text=max_text)
    sim = AstmAnalyserSim(GENERIC, options)
    async with peer_server() as (port, decoded):
        async with asyncio.timeout(WAIT):
            ledger = await sim.run(connector_for(f"tcp://127.0.0.1:{port}"))
            lines = [await decoded.readline() for _ in ledger.acked]
    assert len(ledger.acked) == options.count and not ledger.failures
    assert ledger.refused_frames == 0
    for acked, line in zip(ledger.acked, lines, strict=True):
        theirs = json.loads(line)
        ours = [peer_shape(r) for r in parse_message(acked.raw)]
        # the peer reads H.2 (the delimiter definition) as data, not as delimiters: skip it
        assert [r[:1] + r[2:] if r[0] == "H" else r for r in theirs] == [
            r[:1] + r[2:] if r[0] == "H" else r for r in ours
        ]
        sample = acked.sample
        order = next(r for r in theirs if r[0] == "O")
        specimen = order[2][0] if isinstance(order[2], list) else order[2]
        assert specimen == sample.specimen_id
        reported = [(r[2][3], r[3], r[4]) for r in theirs if r[0] == "R"]
        assert reported == list(sample.values)
