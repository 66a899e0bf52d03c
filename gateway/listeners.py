"""Binds the gateway's listening addresses at start: one that cannot be bound stops the start.

An instrument's ``tcp-listen://`` port, the LIS orders port and the web's ``listen`` are bound
before anything runs, so a port taken by another program (or a second gateway) is a
``ListenError`` naming the key and the address, not a line in the log retried forever.
Outbound connects and serial ports keep their retries in the session: those come back.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence

from drivers.session import InstrumentSession
from drivers.transports.base import describe_os_error
from gateway.errors import ListenError, TransportError

#: uvicorn's default backlog
BACKLOG = 2048


def listen_error(key: str, value: str, what: str, reason: str) -> ListenError:
    return ListenError(
        f"{key} = {value!r} ({what}): cannot listen: {reason}. Another program, or another "
        "Trygg gateway, may be listening there, or the address is not one of this machine's: "
        f"stop that program or give {key} another address."
    )


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__
    return describe_os_error(cause) if isinstance(cause, OSError) else str(exc)


async def bind_sessions(
    sessions: Sequence[InstrumentSession], names: Mapping[str, tuple[str, str]]
) -> None:
    """Start listening for every session whose connector listens.

    ``names`` maps a session's instrument id to its config key and what it is, e.g.
    ``("instruments[2].url", "instrument bench-1")``.
    """
    for session in sessions:
        try:
            await session.listen()
        except TransportError as exc:
            fallback = f"instrument {session.instrument_id}"
            key, what = names.get(session.instrument_id, (fallback, fallback))
            raise listen_error(key, session.url, what, _reason(exc)) from exc


def bind_tcp(host: str, port: int, *, key: str, what: str) -> list[socket.socket]:
    """Bound, listening, non-blocking sockets for every address ``host`` names (as asyncio's
    ``create_server`` would make them); ``ListenError`` when one cannot be bound."""
    value = f"{host}:{port}"
    sockets: list[socket.socket] = []
    try:
        seen: set[tuple[int, object]] = set()
        for family, kind, proto, _, address in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        ):
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if os.name == "posix":  # rebinding right after a restart (TIME_WAIT) is fine
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise listen_error(key, value, what, describe_os_error(exc)) from exc
    return sockets
