"""The LIS link over the project's transports: tls:// with a CA made in the test, and the wire
trace of a LIS exchange (``[lis] trace = true``)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from drivers.protocols.hl7.ack import parse_ack
from drivers.protocols.hl7.mllp import MllpDecoder, frame
from gateway.app import Gateway
from gateway.config import Config
from gateway.lis.forwarder import Forwarder
from gateway.store.queries import summary
from gateway.store.tables import outbox
from simulators.lis import LisSimOptions, LisSimulator
from tests.integration.helpers import (
    analyser,
    free_port,
    gateway_config,
    make_config,
    running,
    wait_for,
)
from tests.tls import make_tls_files

pytestmark = pytest.mark.timeout(60)


def lis_config(store_url: str, port: int, lis_port: int, **lis: Any) -> Config:
    data = gateway_config(store_url, [port], lis_port=lis_port, worker=lis.pop("worker", "inline"))
    data["lis"].update(lis)
    return make_config(data)


def all_acknowledged(gateway: Gateway) -> Callable[[], bool]:
    def check() -> bool:
        with gateway.engine.connect() as conn:
            s = summary(conn)
        return s.received > 0 and s.by_state.get("acknowledged", 0) == s.received

    return check


@pytest.mark.parametrize("worker", ["inline", "process"])
async def test_the_forwarder_delivers_over_tls_with_a_client_certificate(
    make_gateway: Callable[[Config], Gateway], sqlite_url: str, tmp_path: Path, worker: str
) -> None:
    files = make_tls_files(tmp_path)
    lis_port, port = free_port(), free_port()
    config = lis_config(
        sqlite_url,
        port,
        lis_port,
        url=f"tls://127.0.0.1:{lis_port}",
        tls_ca_file=str(files.ca_file),
        tls_cert_file=str(files.client_cert_file),
        tls_key_file=str(files.client_key_file),
        worker=worker,
    )
    gateway = make_gateway(config)
    record = tmp_path / "lis.jsonl"
    # the LIS speaks TLS only and accepts only clients its CA signed (mutual TLS)
    lis_options = LisSimOptions(
        "127.0.0.1", lis_port, record=record, tls=files.server_context(require_client_cert=True)
    )
    async with LisSimulator(lis_options) as lis, running(gateway):
        sim = analyser(port, 6)
        await asyncio.wait_for(sim.run(), 30)
        await wait_for(all_acknowledged(gateway), 30, "every result to be acknowledged over TLS")
    with gateway.engine.connect() as conn:
        sent = list(conn.execute(select(outbox.c.control_id).order_by(outbox.c.id)).scalars())
    assert sent and lis.control_ids == sent
    assert set(lis.ack_codes) == {"AA"}


async def test_a_lis_whose_certificate_our_ca_did_not_sign_gets_nothing(
    make_gateway: Callable[[Config], Gateway], sqlite_url: str, tmp_path: Path
) -> None:
    ours = make_tls_files(tmp_path)
    (tmp_path / "impostor").mkdir()
    impostor = make_tls_files(tmp_path / "impostor")
    lis_port, port = free_port(), free_port()
    config = lis_config(
        sqlite_url, port, lis_port, url=f"tls://127.0.0.1:{lis_port}", tls_ca_file=str(ours.ca_file)
    )
    gateway = make_gateway(config)
    lis_options = LisSimOptions("127.0.0.1", lis_port, tls=impostor.server_context())
    async with LisSimulator(lis_options) as lis, running(gateway):
        await asyncio.wait_for(analyser(port, 2).run(), 30)
        forwarder = gateway.forwarder
        assert isinstance(forwarder, Forwarder)
        await wait_for(lambda: forwarder.retries >= 2, 15, "the forwarder to try and fail")
        assert "certificate verify failed" in forwarder.last_error
        assert not forwarder.connected
    assert lis.received == 0
    with gateway.engine.connect() as conn:
        assert summary(conn).by_state.get("acknowledged", 0) == 0


_TRACE_HEAD = re.compile(r"^\S+Z (?P<peer>\S+) (?P<way><-|->) (?P<size>\d+) bytes?$")
_TRACE_ROW = re.compile(r"^[0-9a-f]{8}  (?P<hex>.{48})  \|")


def bytes_of_trace(records: list[logging.LogRecord]) -> list[tuple[str, bytes]]:
    """(direction, bytes) of each traced read and write, read back from the hexdumps."""
    out = []
    for record in records:
        head, *rows = record.getMessage().splitlines()
        match = _TRACE_HEAD.match(head)
        if match is None:
            continue  # an EOF line
        data = b"".join(bytes.fromhex(_TRACE_ROW.match(r)["hex"]) for r in rows)  # type: ignore[index]
        assert len(data) == int(match["size"])
        out.append((match["way"], data))
    return out


async def test_trace_true_puts_the_lis_exchange_in_the_wire_trace(
    make_gateway: Callable[[Config], Gateway],
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lis_port, port = free_port(), free_port()
    config = lis_config(sqlite_url, port, lis_port, trace=True, batch_size=2)
    gateway = make_gateway(config)
    caplog.set_level(logging.DEBUG, logger="trygg.wire.lis")
    async with LisSimulator(LisSimOptions("127.0.0.1", lis_port)), running(gateway):
        await asyncio.wait_for(analyser(port, 3).run(), 30)
        await wait_for(all_acknowledged(gateway), 30, "every result to be acknowledged")
    with gateway.engine.connect() as conn:
        stored = conn.execute(
            select(outbox.c.control_id, outbox.c.message).order_by(outbox.c.id)
        ).all()
    assert len(stored) >= 2
    wire = bytes_of_trace([r for r in caplog.records if r.name == "trygg.wire.lis"])
    sent = b"".join(data for way, data in wire if way == "->")
    received = b"".join(data for way, data in wire if way == "<-")
    # every message went out exactly as stored, framed, and every ACK came back named by MSA-2
    assert sent == b"".join(frame(message.encode()) for _, message in stored)
    decoder = MllpDecoder()
    decoder.receive_data(received)
    acks = []
    while (block := decoder.next_message()) is not None:
        acks.append(parse_ack(block))
    assert [(a.code, a.acked_control_id) for a in acks] == [("AA", c) for c, _ in stored]
    assert all(r.levelno == logging.DEBUG for r in caplog.records if r.name == "trygg.wire.lis")


async def test_without_trace_the_lis_exchange_is_not_traced(
    make_gateway: Callable[[Config], Gateway],
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    lis_port, port = free_port(), free_port()
    gateway = make_gateway(lis_config(sqlite_url, port, lis_port))
    caplog.set_level(logging.DEBUG, logger="trygg.wire.lis")
    async with LisSimulator(LisSimOptions("127.0.0.1", lis_port)), running(gateway):
        await asyncio.wait_for(analyser(port, 2).run(), 30)
        await wait_for(all_acknowledged(gateway), 30, "every result to be acknowledged")
    assert not [r for r in caplog.records if r.name == "trygg.wire.lis"]
