"""tls://host:port over loopback with a CA made in the test: trust, host names, client certs."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from drivers.errors import ConfigError, TransportError
from drivers.transports import (
    ByteStream,
    TcpListenConnector,
    TlsSettings,
    client_context,
    connector_for,
)
from tests.tls import TlsFiles, make_tls_files

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path)


async def serve_echo(context: ssl.SSLContext) -> tuple[TcpListenConnector, asyncio.Task[None]]:
    """A TLS listener on a free port whose peers get back what they send."""
    listener = TcpListenConnector("tcp-listen://127.0.0.1:0", "127.0.0.1", 0, tls=context)
    await listener.start()

    async def echo() -> None:
        while True:
            stream = await listener.connect()
            try:
                while data := await stream.read():
                    await stream.write(data)
            except TransportError:
                pass  # a refused handshake or a client that left
            finally:
                await stream.aclose()

    return listener, asyncio.create_task(echo())


@pytest.fixture
async def echo_server(tls_files: TlsFiles) -> AsyncIterator[int]:
    listener, task = await serve_echo(tls_files.server_context())
    try:
        yield listener.bound_port or 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await listener.aclose()


async def round_trip(stream: ByteStream, data: bytes) -> bytes:
    await stream.write(data)
    got = b""
    async with asyncio.timeout(5):
        while len(got) < len(data):
            chunk = await stream.read()
            if not chunk:
                break
            got += chunk
    return got


async def test_tls_url_connects_to_a_server_signed_by_the_configured_ca(
    tls_files: TlsFiles, echo_server: int
) -> None:
    connector = connector_for(
        f"tls://127.0.0.1:{echo_server}", tls=TlsSettings(ca_file=tls_files.ca_file)
    )
    stream = await connector.connect()
    try:
        assert stream.peer == f"127.0.0.1:{echo_server}"
        assert await round_trip(stream, b"\x0bMSH|^~\\&|\x1c\r" * 100) == (
            b"\x0bMSH|^~\\&|\x1c\r" * 100
        )
    finally:
        await stream.aclose()


async def test_a_server_the_ca_did_not_sign_is_refused(
    tmp_path: Path, tls_files: TlsFiles, echo_server: int
) -> None:
    (tmp_path / "other").mkdir()
    other = make_tls_files(tmp_path / "other")
    connector = connector_for(
        f"tls://127.0.0.1:{echo_server}", tls=TlsSettings(ca_file=other.ca_file)
    )
    with pytest.raises(TransportError, match="certificate verify failed"):
        await connector.connect()


async def test_without_a_ca_file_the_system_store_does_not_trust_a_private_ca(
    echo_server: int,
) -> None:
    with pytest.raises(TransportError, match="certificate verify failed"):
        await connector_for(f"tls://127.0.0.1:{echo_server}").connect()


async def test_a_certificate_for_another_host_name_is_refused(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path, server_name="lis.sykehus.example")
    listener, task = await serve_echo(files.server_context())
    try:
        connector = connector_for(
            f"tls://127.0.0.1:{listener.bound_port}", tls=TlsSettings(ca_file=files.ca_file)
        )
        with pytest.raises(TransportError, match="certificate verify failed"):
            await connector.connect()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await listener.aclose()


async def test_a_server_that_asks_for_a_client_certificate_gets_ours(
    tls_files: TlsFiles,
) -> None:
    listener, task = await serve_echo(tls_files.server_context(require_client_cert=True))
    url = f"tls://127.0.0.1:{listener.bound_port}"
    try:
        mutual = TlsSettings(
            ca_file=tls_files.ca_file,
            cert_file=tls_files.client_cert_file,
            key_file=tls_files.client_key_file,
        )
        stream = await connector_for(url, tls=mutual).connect()
        try:
            assert await round_trip(stream, b"hello") == b"hello"
        finally:
            await stream.aclose()
        # without a certificate the server hangs up: at the handshake (TLS 1.2) or at the
        # first read after it (TLS 1.3, where the client's certificate is checked later)
        anonymous = connector_for(url, tls=TlsSettings(tls_files.ca_file))

        async def echo_without_a_certificate() -> bytes:
            stream = await anonymous.connect()
            try:
                return await round_trip(stream, b"hello")
            finally:
                await stream.aclose()

        try:
            echoed = await echo_without_a_certificate()
        except TransportError:
            echoed = b""
        assert echoed == b""
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await listener.aclose()


def test_the_client_context_insists_on_tls_12_and_checks_the_server(tls_files: TlsFiles) -> None:
    context = client_context(TlsSettings(ca_file=tls_files.ca_file))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_unusable_files_are_named(tmp_path: Path, tls_files: TlsFiles) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    cases = [
        (TlsSettings(ca_file=tmp_path / "absent.pem"), "ca_file: .*absent.pem: no such file"),
        (TlsSettings(ca_file=junk), "ca_file: .*no usable CA certificate"),
        (TlsSettings(key_file=tls_files.client_key_file), "key_file: a key needs its certificate"),
        (
            TlsSettings(cert_file=tls_files.client_cert_file, key_file=junk),
            "cert_file and key_file: .*not a certificate with its matching private key",
        ),
    ]
    for settings, pattern in cases:
        with pytest.raises(ConfigError, match=pattern):
            client_context(settings)
    with pytest.raises(ConfigError, match="port: missing"):
        connector_for("tls://127.0.0.1")
