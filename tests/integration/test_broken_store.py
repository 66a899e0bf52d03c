"""A broken store stops the ACKs: a real gateway, a store damaged under it, real analysers.

SQLite: the test overwrites the file's pages with junk while the gateway runs (see
``tests.store_damage``); a full disk is a real file-size limit on a ``trygg run`` child. The
gateway must stop acknowledging (HL7 gets AR, an ASTM analyser's ENQ gets NAK), say so in
/api/health, on every page and on MQTT, log it at ERROR, and refuse to start on the damaged file.
PostgreSQL: the test terminates the gateway's backends and then refuses new connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from drivers.mllp import MllpClient
from drivers.protocols.astm.frames import NAK
from drivers.transports import TcpConnector
from gateway import catalogue
from gateway.app import Gateway
from gateway.config import Config
from gateway.errors import StoreDamagedError
from gateway.store.engine import make_engine, upgrade
from tests.conftest import PG_ADMIN_URL
from tests.drivers.test_astm_host import AstmInstrument, message_for, sample
from tests.integration.helpers import (
    analyser,
    connect,
    free_port,
    gateway_config,
    make_config,
    started,
    stopped,
    wait_for,
)
from tests.integration.test_mqtt_events import collect
from tests.mqtt_broker import SYSTEM_PORT, ensure_system_broker
from tests.store_damage import checkpoint, damage, overwrite_pages, sqlite_path
from tests.web.conftest import open_session

pytestmark = pytest.mark.timeout(120)


def store_config(
    store_url: str, *, hl7_port: int, web_port: int, site: str, **store: Any
) -> dict[str, Any]:
    data = gateway_config(store_url, [hl7_port], lis_port=None)
    data["site"]["name"] = site
    data["web"] = {"enabled": True, "listen": f"127.0.0.1:{web_port}"}
    data["store"].update(store)
    return data


def site_toml(data: dict[str, Any]) -> str:
    """The config as a site.toml for a ``trygg run`` child."""
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines.extend(f"{k} = {json.dumps(v)}" for k, v in value.items())
    for key, value in data.items():
        if isinstance(value, list):
            for item in value:
                lines.append(f"[[{key}]]")
                lines.extend(f"{k} = {json.dumps(v)}" for k, v in item.items())
    return "\n".join(lines) + "\n"


@contextlib.asynccontextmanager
async def web_client(
    port: int, cookies: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=10, cookies=cookies
    ) as client:
        yield client


async def health_of(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/api/health")
    return response.status_code, response.json()


async def wait_health(
    client: httpx.AsyncClient, check: Callable[[int, dict[str, Any]], bool], seconds: float
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    status, body = 0, {}  # nothing answered yet
    while True:
        with contextlib.suppress(httpx.TransportError):
            status, body = await health_of(client)
            if check(status, body):
                return body
        if time.monotonic() > deadline:
            raise AssertionError(f"/api/health never matched; last: {status} {body}")
        await asyncio.sleep(0.1)


def failed(status: int, body: dict[str, Any]) -> bool:
    return status == 503 and body["store"]["status"] == "failed"


def healthy(status: int, body: dict[str, Any]) -> bool:
    return status == 200 and body["store"]["status"] == "ok"


async def test_a_damaged_sqlite_store_stops_the_acks_and_raises_the_alarm(
    sqlite_url: str,
    make_gateway: Callable[[Config], Gateway],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ensure_system_broker()
    site = f"store-{uuid.uuid4().hex[:8]}"  # the machine's broker is shared: our own topics
    hl7_port, astm_port, web_port = free_port(), free_port(), free_port()
    data = store_config(
        sqlite_url,
        hl7_port=hl7_port,
        web_port=web_port,
        site=site,
        check_interval_s=0.3,
        recheck_interval_s=0.3,
    )
    data["mqtt"] = {"url": f"mqtt://127.0.0.1:{SYSTEM_PORT}"}
    data["instruments"].append(
        {"id": "astm-1", "driver": "astm_generic", "url": f"tcp-listen://127.0.0.1:{astm_port}"}
    )
    config = make_config(data)
    gateway = make_gateway(config)
    events: list[tuple[str, dict[str, Any]]] = []
    caplog.set_level(logging.WARNING)
    task = await started(gateway)
    # signed in before the damage: the pages below are behind sign-in
    signed = await asyncio.to_thread(open_session, gateway.engine)
    try:
        async with web_client(web_port, signed.cookies) as web, collect(SYSTEM_PORT, events):
            before = analyser(hl7_port, 5, seed=1, ack_timeout_s=5.0)
            await asyncio.wait_for(before.run(), 30)
            assert before.ledger.acked_messages == 5
            stream = await connect(astm_port)
            instrument = AstmInstrument(stream)
            await instrument.send(message_for(sample(n=1)))  # ACKed: the store is fine
            status, body = await health_of(web)
            assert healthy(status, body) and body["database"] == "ok"
            assert body["store"]["check"] == "quick_check"

            # the case: the writer's page cache is warm after a checkpoint, so its
            # writes keep working from the cache while the file under it is junk
            checkpoint(sqlite_path(sqlite_url))
            warm = analyser(hl7_port, 3, seed=8, ack_timeout_s=5.0)
            await asyncio.wait_for(warm.run(), 30)
            assert warm.ledger.acked_messages == 3
            overwrite_pages(sqlite_path(sqlite_url))
            body = await wait_health(web, failed, 15)
            assert body["status"] == "error"
            assert body["store"]["problem"] == "corrupt" and body["database"] == "corrupt"
            assert body["store"]["source"] in ("check", "write", "read") and body["store"]["since"]

            after = analyser(hl7_port, 5, seed=2, ack_timeout_s=5.0)
            await asyncio.wait_for(after.run(), 30)
            assert after.ledger.acked_messages == 0, "an ACK after the store was found broken"
            assert after.ledger.error_acks == 5  # AR each: refused, not lost by the analyser

            ident = instrument.link.send_message(message_for(sample(n=2)), time.monotonic())
            await instrument.pump(lambda: NAK in instrument.wire_in)
            assert not instrument.sent(ident), "the ASTM analyser was told its message arrived"
            await stream.aclose()

            def alarm() -> dict[str, Any] | None:
                for topic, payload in events:
                    if topic == f"trygg/{site}/store/-" and payload.get("status") == "failed":
                        return payload
                return None

            await wait_for(lambda: alarm() is not None, 15, "the store alarm on MQTT")
            payload = alarm()
            assert payload is not None and payload["problem"] == "corrupt"

            lang = config.site.language
            banner = catalogue.text(lang, "store.alarm.title")
            for path in ("/", "/results", "/outbox", "/quarantine", "/orders"):
                page = await web.get(path)
                assert 'class="store-alarm"' in page.text, path
                assert banner in page.text, path
                assert page.status_code in (200, 503), (path, page.status_code)
            results = await web.get("/results")
            assert results.status_code == 503
            assert catalogue.text(lang, "error.store") in results.text
            api = await web.get("/api/results")
            assert api.status_code == 503 and "detail" in api.json()
    finally:
        await stopped(task)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("corrupt" in r.getMessage() for r in errors), [r.getMessage() for r in errors]

    again = make_gateway(config)
    with pytest.raises(StoreDamagedError) as refused:
        await again.run()
    message = str(refused.value)
    assert "integrity check" in message and "trygg db backup" in message
    assert "restore" in message.lower()


async def test_the_gateway_refuses_to_start_on_a_damaged_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    damage(sqlite_path(url))
    data = store_config(url, hl7_port=free_port(), web_port=free_port(), site="broken")
    config_path = tmp_path / "site.toml"
    config_path.write_text(site_toml(data), encoding="utf-8")
    done = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "run",
        "--config",
        str(config_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(done.communicate(), 60)
    text_out = out.decode() + err.decode()
    assert done.returncode not in (0, None)
    assert "Traceback" not in text_out
    assert "integrity check" in text_out and "trygg db backup" in text_out
    assert str(sqlite_path(url)) in text_out


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec: a write past ``limit`` fails (EFBIG)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


async def test_a_failing_write_stops_the_acks(tmp_path: Path) -> None:
    """A disk that takes no more bytes: the write fails, no ACK follows, not even later."""
    url = f"sqlite:///{tmp_path / 'gw.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    checkpoint(sqlite_path(url))
    hl7_port, web_port = free_port(), free_port()
    data = store_config(
        url,
        hl7_port=hl7_port,
        web_port=web_port,
        site="full-disk",
        check_interval_s=3600.0,  # only the write can find it
        recheck_interval_s=0.3,
    )
    config_path = tmp_path / "site.toml"
    config_path.write_text(site_toml(data), encoding="utf-8")
    limit = sqlite_path(url).stat().st_size + 192 * 1024
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "run",
        "--config",
        str(config_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=_limit_file_size(limit),
    )
    lines: list[str] = []

    async def read_output() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:  # a pipe: the size limit does not apply to it
            lines.append(line.decode(errors="replace"))

    reader = asyncio.create_task(read_output())
    try:
        async with web_client(web_port) as web:
            await wait_health(web, healthy, 30)
            sim = analyser(hl7_port, 1, seed=3, ack_timeout_s=5.0)
            codes: list[str] = []
            connector = TcpConnector(f"tcp://127.0.0.1:{hl7_port}", "127.0.0.1", hl7_port)
            stream = await connector.connect()
            client = MllpClient(stream, ack_timeout_s=10)
            try:
                while len(codes) < 400 and codes[-5:] != ["AR"] * 5:
                    control_id, payload, _ = sim.build_message(datetime.now(UTC))
                    codes.append((await client.exchange(payload, control_id=control_id)).code)
            finally:
                await stream.aclose()
            assert "AA" in codes, "the store took nothing before the disk filled"
            first_refused = next(i for i, code in enumerate(codes) if code != "AA")
            assert set(codes[first_refused:]) == {"AR"}, codes
            body = await wait_health(web, failed, 10)
            assert body["store"]["source"] == "write"
            assert body["store"]["problem"] in ("io_error", "disk_full")
            # for 2 s more (several rechecks, each a quick_check that passes and a small probe
            # write that may pass too): still no AA, since no message's write commits
            later = analyser(hl7_port, 1, seed=4, ack_timeout_s=5.0)
            stream = await connector.connect()
            client = MllpClient(stream, ack_timeout_s=10)
            deadline = time.monotonic() + 2.0
            try:
                while time.monotonic() < deadline:
                    control_id, payload, _ = later.build_message(datetime.now(UTC))
                    codes.append((await client.exchange(payload, control_id=control_id)).code)
                    await asyncio.sleep(0.05)
            finally:
                await stream.aclose()
            assert set(codes[first_refused:]) == {"AR"}, codes
    finally:
        proc.send_signal(signal.SIGINT)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 20)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await reader
    log = "".join(lines)
    assert " ERROR " in log and ("io_error" in log or "disk_full" in log), log[-3000:]
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.postgres
async def test_postgres_health_reports_a_dropped_connection(
    postgres_url: str, make_gateway: Callable[[Config], Gateway]
) -> None:
    hl7_port, web_port = free_port(), free_port()
    data = store_config(
        postgres_url,
        hl7_port=hl7_port,
        web_port=web_port,
        site="pg-drop",
        check_interval_s=0.3,
        recheck_interval_s=0.3,
    )
    gateway = make_gateway(make_config(data))
    name = postgres_url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def admin_run(statement: str) -> None:
        with admin.connect() as conn:
            conn.execute(text(statement))

    def terminate() -> None:
        admin_run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )

    task = await started(gateway)
    try:
        async with web_client(web_port) as web:
            first = analyser(hl7_port, 3, seed=4, ack_timeout_s=5.0)
            await asyncio.wait_for(first.run(), 30)
            assert first.ledger.acked_messages == 3
            status, body = await health_of(web)
            assert healthy(status, body) and body["store"]["check"] == "connection"

            await asyncio.to_thread(terminate)  # the connections drop; the server still answers
            body = await wait_health(
                web, lambda s, b: healthy(s, b) and b["store"]["connection_drops"] >= 1, 15
            )
            second = analyser(hl7_port, 2, seed=5, ack_timeout_s=5.0)
            await asyncio.wait_for(second.run(), 30)
            assert second.ledger.acked_messages == 2

            await asyncio.to_thread(admin_run, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await asyncio.to_thread(terminate)
            body = await wait_health(web, failed, 15)
            assert body["store"]["problem"] == "unreachable"
            third = analyser(hl7_port, 3, seed=6, ack_timeout_s=5.0)
            await asyncio.wait_for(third.run(), 60)
            assert third.ledger.acked_messages == 0 and third.ledger.error_acks == 3

            await asyncio.to_thread(admin_run, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await wait_health(web, healthy, 15)  # the connection check passes again
            fourth = analyser(hl7_port, 2, seed=7, ack_timeout_s=5.0)
            await asyncio.wait_for(fourth.run(), 30)
            assert fourth.ledger.acked_messages == 2
    finally:
        with contextlib.suppress(Exception):
            admin_run(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.dispose()
        await stopped(task)
