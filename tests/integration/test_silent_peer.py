"""A silent or half-open peer never blocks an instrument (issue 9, item 1).

Real TCP on 127.0.0.1: an idle socket (a pulled cable, a port scan) connects to the
instrument's port first, then a real sender (the ASTM analyser simulator, the HL7 analyser
simulator, the LIS's order sender) must be served within the deadline under each
``connections`` policy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from drivers.analysers.profiles import astm_generic
from drivers.errors import TransportError
from drivers.model import OrderAction, OrderRequest
from drivers.protocols.hl7.orders import build_order_message
from drivers.transports import connector_for
from gateway.app import Gateway
from gateway.config import Config
from gateway.store.tables import instruments, orders, raw_messages
from simulators.astm_analyser import AstmAnalyserSim, AstmLedger, AstmSimOptions
from simulators.hl7_analyser import Hl7AnalyserSim
from simulators.lis_orders import send_order_messages
from tests.integration.helpers import (
    analyser,
    free_port,
    gateway_config,
    make_config,
    running,
    wait_for,
)

pytestmark = pytest.mark.timeout(90)

#: what "served at once" means here: far below any idle deadline used in these tests
PROMPTLY_S = 8.0


def one_instrument(
    sqlite_url: str, driver: str, port: int, **keys: Any
) -> tuple[dict[str, Any], str]:
    data = gateway_config(sqlite_url, [], lis_port=None)
    data["instruments"] = [
        {"id": "inst-0", "driver": driver, "url": f"tcp-listen://127.0.0.1:{port}", **keys}
    ]
    return data, "inst-0"


@contextlib.asynccontextmanager
async def silent_peer(port: int) -> AsyncIterator[asyncio.StreamReader]:
    """A connection that says nothing at all (its reader tells when the gateway hangs up)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def closed_by_gateway(reader: asyncio.StreamReader, within_s: float) -> bool:
    """True when the gateway closed the silent connection within ``within_s``."""
    try:
        async with asyncio.timeout(within_s):
            return await reader.read(1) == b""
    except TimeoutError:
        return False
    except OSError:  # reset: closed as well
        return True


async def astm_sender(port: int, count: int = 3, seed: int = 1) -> AstmLedger:
    sim = AstmAnalyserSim(
        astm_generic.GENERIC, AstmSimOptions(seed=seed, count=count, reconnect_delay_s=0.1)
    )
    return await sim.run(connector_for(f"tcp://127.0.0.1:{port}"))


async def hl7_send(port: int, messages: int = 3, seed: int = 1) -> Hl7AnalyserSim:
    sim = analyser(port, messages, seed)
    await sim.run()
    return sim


def stored(gateway: Gateway) -> int:
    with gateway.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(raw_messages)).scalar_one())


def state_code(gateway: Gateway, instrument_id: str) -> str:
    with gateway.engine.connect() as conn:
        query = select(instruments.c.state_code).where(instruments.c.id == instrument_id)
        return str(conn.execute(query).scalar_one())


MakeGateway = Callable[[Config], Gateway]


# --- newest (the default): the newcomer is served at once, the silent one closed ------------


async def test_newest_serves_the_astm_analyser_at_once_and_closes_the_silent_one(
    make_gateway: MakeGateway, sqlite_url: str
) -> None:
    port = free_port()
    data, _ = one_instrument(sqlite_url, "astm_generic", port)  # no keys: the defaults
    gateway = make_gateway(make_config(data))
    async with running(gateway, ready=True), silent_peer(port) as idle:
        await asyncio.sleep(0.2)  # the silent connection is the one being served
        async with asyncio.timeout(PROMPTLY_S):
            ledger = await astm_sender(port)
        assert len(ledger.acked) == 3 and ledger.connections == 1
        assert await closed_by_gateway(idle, 1.0)
        assert stored(gateway) == 3


async def test_newest_serves_the_hl7_sender_at_once_and_closes_the_silent_one(
    make_gateway: MakeGateway, sqlite_url: str
) -> None:
    port = free_port()
    data, _ = one_instrument(sqlite_url, "hl7_mllp", port)
    gateway = make_gateway(make_config(data))
    async with running(gateway, ready=True), silent_peer(port) as idle:
        await asyncio.sleep(0.2)
        async with asyncio.timeout(PROMPTLY_S):
            sim = await hl7_send(port)
        assert sim.ledger.acked_messages == 3
        assert await closed_by_gateway(idle, 1.0)
        assert stored(gateway) == 3


# --- single: the newcomer is refused until the idle deadline frees the port -----------------


async def test_single_refuses_the_newcomer_until_the_idle_deadline_closes_the_silent_one(
    make_gateway: MakeGateway, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    data, _ = one_instrument(
        sqlite_url, "astm_generic", port, connections="single", idle_timeout_s=1.5
    )
    gateway = make_gateway(make_config(data))
    loop = asyncio.get_running_loop()
    async with running(gateway, ready=True), silent_peer(port) as idle:
        opened = loop.time()
        await asyncio.sleep(0.2)
        sending = asyncio.create_task(astm_sender(port))
        assert await closed_by_gateway(idle, 3.0)  # by the idle deadline...
        closed = loop.time() - opened
        assert 1.3 <= closed < 3.0  # ...and not before it
        async with asyncio.timeout(PROMPTLY_S):
            ledger = await sending  # then the analyser, retrying, is served
        assert len(ledger.acked) == 3 and ledger.connections > 1  # refused before
        assert stored(gateway) == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("refused a connection" in w and 'connections = "single"' in w for w in warnings)
    assert any("nothing received for 1.5 s (idle)" in w for w in warnings)


async def test_single_refuses_a_second_hl7_sender_while_one_is_served(
    make_gateway: MakeGateway, sqlite_url: str
) -> None:
    port = free_port()
    data, _ = one_instrument(sqlite_url, "hl7_mllp", port, connections="single")
    gateway = make_gateway(make_config(data))
    async with running(gateway, ready=True), silent_peer(port) as idle:
        await asyncio.sleep(0.2)
        second, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            assert await closed_by_gateway(second, 2.0)  # refused: closed at once
        finally:
            writer.close()
        assert not await closed_by_gateway(idle, 0.5)  # the first one is still served


# --- parallel: every peer is served at once, each with its own link ---------------------------


async def test_parallel_serves_every_sender_beside_the_silent_one(
    make_gateway: MakeGateway, sqlite_url: str
) -> None:
    port = free_port()
    data, instrument = one_instrument(sqlite_url, "hl7_mllp", port, connections="parallel")
    gateway = make_gateway(make_config(data))
    async with running(gateway, ready=True), silent_peer(port) as idle:
        await asyncio.sleep(0.2)
        async with asyncio.timeout(PROMPTLY_S):
            first, second = await asyncio.gather(hl7_send(port, 4, 1), hl7_send(port, 4, 2))
        assert first.ledger.acked_messages == second.ledger.acked_messages == 4
        assert stored(gateway) == 8
        assert not await closed_by_gateway(idle, 0.3)  # parallel: the silent one stays
        live = gateway.live.instruments[instrument]
        assert live.connected and live.state == "connected"  # the silent one is still open


async def test_parallel_serves_two_astm_analysers_each_with_its_own_link(
    make_gateway: MakeGateway, sqlite_url: str
) -> None:
    port = free_port()
    data, _ = one_instrument(sqlite_url, "astm_generic", port, connections="parallel")
    gateway = make_gateway(make_config(data))
    async with running(gateway, ready=True), silent_peer(port):
        await asyncio.sleep(0.2)
        async with asyncio.timeout(PROMPTLY_S * 2):
            ledgers = await asyncio.gather(astm_sender(port, 4, 1), astm_sender(port, 4, 2))
        assert [len(ledger.acked) for ledger in ledgers] == [4, 4]
        assert stored(gateway) == 8


# --- the idle deadline itself ---------------------------------------------------------------


async def test_the_idle_deadline_closes_a_silent_connection_and_shows_it(
    make_gateway: MakeGateway, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    data, instrument = one_instrument(sqlite_url, "hl7_mllp", port, idle_timeout_s=1)
    gateway = make_gateway(make_config(data))
    async with running(gateway, ready=True), silent_peer(port) as idle:
        assert not await closed_by_gateway(idle, 0.7)
        assert await closed_by_gateway(idle, 2.0)

        def shown() -> bool:
            return state_code(gateway, instrument) == "idle_timeout"

        await wait_for(shown, 5, "the idle timeout to be the instrument's state")
        # and the port serves the next sender as before
        async with asyncio.timeout(PROMPTLY_S):
            sim = await hl7_send(port, 2)
        assert sim.ledger.acked_messages == 2
    (warning,) = [r for r in caplog.records if "nothing received" in r.getMessage()]
    assert warning.levelname == "WARNING" and instrument in warning.getMessage()


async def test_a_half_received_hl7_message_gets_the_shorter_deadline(
    make_gateway: MakeGateway, sqlite_url: str
) -> None:
    port = free_port()
    data, _ = one_instrument(sqlite_url, "hl7_mllp", port, idle_timeout_s=60, partial_timeout_s=1)
    gateway = make_gateway(make_config(data))
    async with running(gateway, ready=True):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"\x0bMSH|^~\\&|HALF|")  # a block begun, then silence
            await writer.drain()
            assert await closed_by_gateway(reader, 3.0)  # 1 s, not 60
        finally:
            writer.close()
        assert stored(gateway) == 0  # our hang-up: the sender resends, nothing kept for it


# --- the LIS order port ----------------------------------------------------------------------


def order_messages(count: int) -> list[bytes]:
    return [
        build_order_message(
            [OrderRequest(OrderAction.NEW, f"SPEC{i}", ("CRP",), "", placer_order=f"ORD-{i}")],
            control_id=f"ORD{i}",
            now=datetime.now(UTC),
        )
        for i in range(count)
    ]


async def test_a_silent_connection_does_not_block_the_lis_order_port(
    make_gateway: MakeGateway, sqlite_url: str
) -> None:
    orders_port = free_port()
    data = gateway_config(sqlite_url, [], lis_port=free_port(), worker="inline")
    data["lis"]["orders_url"] = f"tcp-listen://127.0.0.1:{orders_port}"
    gateway = make_gateway(make_config(data))
    async with running(gateway, ready=True), silent_peer(orders_port) as idle:
        await asyncio.sleep(0.2)
        async with asyncio.timeout(PROMPTLY_S):
            codes = await send_order_messages("127.0.0.1", orders_port, order_messages(2))
        assert codes == ["AA", "AA"]
        assert await closed_by_gateway(idle, 1.0)
        with gateway.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(orders)).scalar_one() == 2


async def test_the_order_port_takes_its_own_policy_and_deadline(
    make_gateway: MakeGateway, sqlite_url: str
) -> None:
    orders_port = free_port()
    data = gateway_config(sqlite_url, [], lis_port=free_port(), worker="inline")
    data["lis"].update(
        orders_url=f"tcp-listen://127.0.0.1:{orders_port}",
        orders_connections="single",
        orders_idle_timeout_s=1,
    )
    gateway = make_gateway(make_config(data))
    async with running(gateway, ready=True), silent_peer(orders_port) as idle:
        await asyncio.sleep(0.2)
        with pytest.raises(TransportError):  # refused while the silent one is open
            await send_order_messages("127.0.0.1", orders_port, order_messages(1), timeout_s=2)
        assert await closed_by_gateway(idle, 2.0)  # the idle deadline
        codes = await send_order_messages("127.0.0.1", orders_port, order_messages(1))
        assert codes == ["AA"]
