"""Peer servers run in a child process: python-hl7's MLLP server (parse + ACK) and a TCP echo."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from typing import Any

import hl7.mllp

KINDS = ("hl7", "echo")
_open: set[Any] = set()  # writers of open connections, closed at shutdown so handlers end cleanly


async def _hl7_client(reader: Any, writer: Any) -> None:
    """One connection to python-hl7's server: parse every message, answer ``create_ack()``."""
    _open.add(writer)
    try:
        while True:
            message = await reader.readmessage()
            writer.writemessage(message.create_ack())
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        _open.discard(writer)
        writer.close()


async def _echo_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    _open.add(writer)
    try:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        _open.discard(writer)
        writer.close()


async def serve(kind: str) -> None:
    """Listen on a free loopback port, print ``PORT n``, serve until stdin closes."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    if kind == "hl7":
        server = await hl7.mllp.start_hl7_server(_hl7_client, "127.0.0.1", 0, encoding="utf-8")
    elif kind == "echo":
        server = await asyncio.start_server(_echo_client, "127.0.0.1", 0)
    else:
        raise SystemExit(f"unknown server kind {kind!r}; known: {', '.join(KINDS)}")

    def wait_for_eof() -> None:
        sys.stdin.read()
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(done.set)

    threading.Thread(target=wait_for_eof, daemon=True).start()
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()
    async with server:
        await done.wait()
        for writer in list(_open):
            writer.close()
        for _ in range(50):
            if not _open:
                break
            await asyncio.sleep(0.01)


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: python -m bench.servers {{{'|'.join(KINDS)}}}")
    asyncio.run(serve(sys.argv[1]))


if __name__ == "__main__":
    main()
