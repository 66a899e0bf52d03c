"""Web hardening: the Host guard, remote listening (plain HTTP: TLS in front), ids out of range."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from gateway.app import Gateway
from gateway.config import Config, ConfigError, WebConfig, parse_config
from gateway.web.app import create_app
from gateway.web.hosts import allowed_hosts, host_name
from tests.ports import free_port
from tests.web.conftest import LOCAL, VALID_FNR, Seeded, make_config, sign_in

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient


@pytest.fixture
def client(web_config: Config, web_engine: Engine, seeded: Seeded) -> Iterator[TestClient]:
    with TestClient(create_app(web_config, web_engine), base_url=LOCAL) as test_client:
        sign_in(test_client)
        yield test_client


# --- DNS rebinding: a foreign Host header reads nothing -------------------------------------


@pytest.mark.parametrize("path", ["/api/results", "/results", "/", "/api/health", "/openapi.json"])
def test_a_foreign_host_header_is_refused(client: TestClient, path: str) -> None:
    response = client.get(path, headers={"host": "evil.example.com:8470"})
    assert response.status_code == 400
    assert VALID_FNR[:6] not in response.text  # no result leaks, not even masked
    assert "evil.example.com" in response.text  # says which name was refused
    assert "allowed_hosts" in response.text  # and what to do


def test_the_refusal_speaks_the_readers_language(client: TestClient) -> None:
    nb = client.get("/results", headers={"host": "evil.example.com"})
    en = client.get("/results?lang=en", headers={"host": "evil.example.com"})
    assert "svarer ikke på navnet" in nb.text
    assert "does not answer to the name" in en.text
    assert client.get("/api/results", headers={"host": "evil.example.com"}).json()["detail"]


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8470", "localhost:8470", "LOCALHOST", "[::1]:8470", "127.0.0.1"]
)
def test_this_pcs_own_names_are_served(client: TestClient, host: str) -> None:
    response = client.get("/api/results", headers={"host": host})
    assert response.status_code == 200, response.text
    assert response.json()


def test_a_missing_host_header_is_refused(web_config: Config, web_engine: Engine) -> None:
    async def call() -> int:
        app = create_app(web_config, web_engine)
        statuses: list[int] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(int(str(message["status"])))

        scope = {
            "type": "http",
            "http_version": "1.0",
            "method": "GET",
            "path": "/api/results",
            "raw_path": b"/api/results",
            "query_string": b"",
            "headers": [],
            "scheme": "http",
            "server": ("127.0.0.1", 8470),
            "client": ("127.0.0.1", 50000),
            "root_path": "",
        }
        await app(scope, receive, send)  # type: ignore[arg-type]
        return statuses[0]

    assert asyncio.run(call()) == 400


def test_allowed_hosts_extends_the_names(web_engine: Engine, seeded: Seeded) -> None:
    config = make_config()
    config = config.model_copy(
        update={"web": WebConfig(listen="127.0.0.1:8470", allowed_hosts=["labpc-3.lab.local"])}
    )
    with TestClient(create_app(config, web_engine), base_url=LOCAL) as client:
        sign_in(client)
        assert client.get("/api/results", headers={"host": "LabPC-3.lab.local."}).status_code == 200
        assert client.get("/api/results", headers={"host": "labpc-4.lab.local"}).status_code == 400


def test_names_of_a_wildcard_listen() -> None:
    web = WebConfig(listen="0.0.0.0:8470", allow_remote=True, allowed_hosts=["10.0.4.17"])
    names = allowed_hosts(web, hostname="LabPC-3")
    assert names == {"localhost", "127.0.0.1", "::1", "labpc-3", "10.0.4.17"}
    assert "0.0.0.0" not in names  # nobody browses to the wildcard; a rebinder could


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8470", "127.0.0.1"),
        ("[::1]:8470", "::1"),
        ("[::1]", "::1"),
        ("Lab.PC.:80", "lab.pc"),
        ("labpc", "labpc"),
        ("", ""),
        ("[::1", ""),
        ("evil.example.com:bad", "evil.example.com:bad"),
    ],
)
def test_host_name_of_a_header(header: str, name: str) -> None:
    assert host_name(header) == name


# --- listening beyond this PC is explicit ---------------------------------------------------


@pytest.mark.parametrize("listen", ["0.0.0.0:8470", "[::]:8470", "10.0.4.17:8470", "labpc:8470"])
def test_a_remote_listen_needs_allow_remote(listen: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"site": {"name": "lab"}, "web": {"listen": listen}})
    message = str(caught.value)
    assert "web" in message and "allow_remote" in message and listen in message
    assert "plain HTTP" in message and "TLS" in message  # why, and what to put in front


@pytest.mark.parametrize("listen", ["127.0.0.1:8470", "localhost:8470", "[::1]:8470"])
def test_loopback_listens_need_nothing(listen: str) -> None:
    config = parse_config({"site": {"name": "lab"}, "web": {"listen": listen}})
    assert not config.web.is_remote


def test_a_disabled_web_may_keep_a_remote_listen() -> None:
    config = parse_config(
        {"site": {"name": "lab"}, "web": {"enabled": False, "listen": "0.0.0.0:8470"}}
    )
    assert not config.web.enabled and config.web.is_remote and not config.web.allow_remote


def test_a_remote_listen_warns_at_every_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    config = parse_config(
        {
            "site": {"name": "lab"},
            "store": {"url": f"sqlite:///{tmp_path / 'store.sqlite3'}"},
            "web": {"listen": f"0.0.0.0:{port}", "allow_remote": True},
        }
    )

    async def start_and_ask() -> tuple[int, int]:
        gateway = Gateway(config)
        task = asyncio.create_task(gateway.run())
        try:
            await asyncio.wait_for(gateway.ready.wait(), 20)
            async with httpx.AsyncClient() as http:
                ok = httpx.Response(0)  # no answer yet
                for _ in range(100):  # uvicorn starts serving just after ready
                    with contextlib.suppress(httpx.TransportError):
                        ok = await http.get(f"http://127.0.0.1:{port}/api/health")
                        break
                    await asyncio.sleep(0.05)
                foreign = await http.get(
                    f"http://127.0.0.1:{port}/api/health", headers={"host": "evil.example.com"}
                )
            return ok.status_code, foreign.status_code
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    with caplog.at_level(logging.WARNING, logger="gateway.app"):
        ok, foreign = asyncio.run(start_and_ask())
    assert (ok, foreign) == (200, 400)
    warned = [r.getMessage() for r in caplog.records if "allow_remote" in r.getMessage()]
    assert warned and "plain HTTP" in warned[0] and "TLS" in warned[0]


# --- ids out of range are not found ---------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/results/99999999999999999999999",
        "/results/99999999999999999999999",
        "/api/results/9223372036854775808",
        "/api/results/0",
        "/results/-1",
    ],
)
def test_an_id_out_of_range_is_not_found(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404, response.text


def test_the_largest_id_is_asked_for(client: TestClient) -> None:
    assert client.get("/api/results/9223372036854775807").status_code == 404
