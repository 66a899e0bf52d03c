"""The worklist end to end: the LIS sends HL7 orders over MLLP to the gateway, an ASTM
analyser asks for its specimens' orders (host query) over a pty serial port or TCP, and gets
the LIS's tests back; specimens without orders get "no information". A message on the order
port that is not an order is refused with AE, kept in quarantine, and changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from drivers.analysers.profiles.astm_generic import GENERIC
from drivers.model import OrderAction, OrderRequest
from drivers.protocols.astm.records import Record, parse_message
from drivers.protocols.hl7.orders import build_order_message
from drivers.transports import Connector, connector_for
from gateway.app import Gateway
from gateway.config import Config
from gateway.orders.receiver import OrderReceiver
from gateway.orders.store import ORDER_SOURCE, list_orders
from gateway.store.audit import verify
from gateway.store.tables import quarantine, raw_messages, results
from simulators.astm_analyser import AstmAnalyserSim, AstmSimOptions, PtyConnector
from simulators.lis import LisSimOptions, LisSimulator
from simulators.lis_orders import send_order_messages
from simulators.pty import PtyPair
from tests.integration.helpers import free_port, gateway_config, make_config, wait_for

pytestmark = pytest.mark.timeout(90)

INSTRUMENT = "astm-1"
FNR = "01010012356"
ORDERS = [
    OrderRequest(OrderAction.NEW, "S-100", ("GLU", "CRP"), FNR, "S", "R-1"),
    OrderRequest(OrderAction.NEW, "S-101", ("HBA1C",), FNR, "R", "R-2"),
    OrderRequest(OrderAction.NEW, "S-102", ("K",), FNR, "R", "R-3"),
]
#: the LIS withdraws S-102 before the tube reaches the analyser
CANCEL = [OrderRequest(OrderAction.CANCEL, "S-102", ())]
NOT_AN_ORDER = b"MSH|^~\\&|LIS||TRYGG||20261122090000||ORU^R01|X9|P|2.5.1\rPID|1||123\r"


def replies_by_specimen(sim_queries: list[tuple[str, list[bytes]]]) -> dict[str, list[Record]]:
    return {
        specimen: [record for reply in replies for record in parse_message(reply)]
        for specimen, replies in sim_queries
    }


async def connect_when_listening(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    for _ in range(100):
        try:
            return await asyncio.open_connection("127.0.0.1", port)
        except ConnectionRefusedError:
            await asyncio.sleep(0.05)
    raise AssertionError("the order port never opened")


@pytest.mark.parametrize("transport", ["pty", "tcp"])
async def test_orders_from_the_lis_answer_the_analysers_queries(
    transport: str, sqlite_url: str, make_gateway: Callable[[Config], Gateway]
) -> None:
    lis_port, orders_port = free_port(), free_port()
    with contextlib.ExitStack() as stack:
        connector: Connector
        if transport == "pty":
            pair = stack.enter_context(PtyPair())
            url, connector = pair.url(9600), PtyConnector(pair)
        else:
            port = free_port()
            url, connector = (
                f"tcp-listen://127.0.0.1:{port}",
                connector_for(f"tcp://127.0.0.1:{port}"),
            )
        data = gateway_config(sqlite_url, [], lis_port=lis_port, worker="inline")
        data["lis"]["orders_url"] = f"tcp-listen://127.0.0.1:{orders_port}"
        data["instruments"] = [{"id": INSTRUMENT, "driver": "astm_generic", "url": url}]
        gateway = make_gateway(make_config(data))
        async with LisSimulator(LisSimOptions(port=lis_port)):
            task = asyncio.create_task(gateway.run())
            try:
                await asyncio.wait_for(gateway.ready.wait(), 20)
                await wait_for(
                    lambda: gateway.live.instruments[INSTRUMENT].connected or transport == "tcp",
                    20,
                    "the serial port",
                )
                now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
                messages = [
                    build_order_message(ORDERS, control_id="ORD-1", now=now),
                    build_order_message(CANCEL, control_id="ORD-2", now=now),
                    NOT_AN_ORDER,
                ]
                codes = await send_order_messages(
                    "127.0.0.1", orders_port, messages, connect_within_s=5.0
                )
                assert codes == ["AA", "AA", "AE"]
                # the order link's state reached the status the dashboard shows
                assert gateway.status()["lis"]["orders_detail"] != "not connected yet"
                sim = AstmAnalyserSim(
                    GENERIC,
                    AstmSimOptions(
                        seed=3,
                        count=4,
                        query_share=1.0,
                        specimen_ids=("S-100", "S-101", "S-102", "S-999"),
                        reply_timeout_s=10.0,
                    ),
                )
                ledger = await asyncio.wait_for(sim.run(connector), 40)
                assert not task.done(), "the gateway stopped"
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    assert len(ledger.acked) == 4 and all(q.answered and not q.lost for q in ledger.queries)
    replies = replies_by_specimen([(q.specimen_id, q.replies) for q in ledger.queries])
    orders_for = {
        specimen: [r for r in records if r.type == "O"] for specimen, records in replies.items()
    }
    # S-100: both tests, stat; S-101: its one test; O.3 is the specimen, O.5 the tests
    (s100,) = orders_for["S-100"]
    assert s100.value(3) == "S-100" and s100.value(6) == "S"
    assert [rep[3] for rep in s100.field(5)] == ["GLU", "CRP"]
    (s101,) = orders_for["S-101"]
    assert [rep[3] for rep in s101.field(5)] == ["HBA1C"]
    # cancelled and unknown specimens: "no information" (Q.13 = X), no order records
    for specimen in ("S-102", "S-999"):
        assert orders_for[specimen] == []
        (query,) = [r for r in replies[specimen] if r.type == "Q"]
        assert query.value(13) == "X"

    with gateway.engine.connect() as conn:
        lines = list_orders(conn, state=None)
        refused = (
            conn.execute(
                select(quarantine.c.field).where(quarantine.c.instrument_id == ORDER_SOURCE)
            )
            .scalars()
            .all()
        )
        stored = set(conn.execute(select(results.c.specimen_id)).scalars())
        assert verify(conn).ok
    assert sorted((line["specimen_id"], line["test_code"], line["state"]) for line in lines) == [
        ("S-100", "CRP", "open"),
        ("S-100", "GLU", "open"),
        ("S-101", "HBA1C", "open"),
        ("S-102", "K", "cancelled"),
    ]
    assert refused == ["MSH-9"]
    # the analyser's results for the queried specimens were stored too
    assert {"S-100", "S-101", "S-102", "S-999"} <= stored


async def test_a_broken_frame_on_the_order_port_is_kept_and_the_link_reopens(
    sqlite_url: str, make_gateway: Callable[[Config], Gateway]
) -> None:
    """An MLLP block longer than the receiver takes: its bytes go to quarantine, the session
    hangs up, and the next connection's orders still land."""
    lis_port, orders_port = free_port(), free_port()
    data = gateway_config(sqlite_url, [], lis_port=lis_port, worker="inline")
    data["lis"]["orders_url"] = f"tcp-listen://127.0.0.1:{orders_port}"
    gateway = make_gateway(make_config(data))
    # the order session's receiver, with a small block limit so a short write overruns it
    gateway.sessions[-1]._driver = OrderReceiver(gateway.writer, max_message_bytes=200)
    task = asyncio.create_task(gateway.run(web=False))
    try:
        await asyncio.wait_for(gateway.ready.wait(), 20)
        reader, writer = await connect_when_listening(orders_port)
        endless = b"\x0bMSH|^~\\&|LIS" + b"x" * 400
        writer.write(endless)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # the gateway hung up
        writer.close()
        now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
        order = build_order_message(ORDERS[1:2], control_id="ORD-9", now=now)
        assert await send_order_messages(
            "127.0.0.1", orders_port, [order], connect_within_s=5.0
        ) == ["AA"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    with gateway.engine.connect() as conn:
        (kept,) = conn.execute(
            select(quarantine.c.field, raw_messages.c.raw)
            .join(raw_messages, raw_messages.c.id == quarantine.c.raw_message_id)
            .where(quarantine.c.instrument_id == ORDER_SOURCE)
        ).all()
        assert [line["specimen_id"] for line in list_orders(conn)] == ["S-101"]
    assert kept.field == "mllp" and bytes(kept.raw).startswith(b"\x0bMSH")
