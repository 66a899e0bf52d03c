"""TCP keepalive on every socket Trygg opens or accepts, so a half-open peer is found.

A peer whose cable was pulled or that rebooted leaves a socket that never reports anything:
keepalive probes make the kernel break it (a read then fails) after roughly
``idle + interval * count`` seconds of silence, instead of never.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

log = logging.getLogger(__name__)

#: seconds of silence before the first probe, seconds between probes, probes unanswered
KEEPALIVE_IDLE_S = 60
KEEPALIVE_INTERVAL_S = 10
KEEPALIVE_COUNT = 5


def set_keepalive(
    sock: Any,
    *,
    idle_s: int = KEEPALIVE_IDLE_S,
    interval_s: int = KEEPALIVE_INTERVAL_S,
    count: int = KEEPALIVE_COUNT,
) -> None:
    """Switch keepalive on for ``sock`` (a socket, or asyncio's wrapper of one) with these timers.

    SO_KEEPALIVE is everywhere; the timers are set where the platform has the option (Linux has
    all three; Windows 10 and macOS have most: macOS names the idle time TCP_KEEPALIVE). A
    platform that refuses one keeps its own default for it. Never raises: a socket the peer
    already reset is found by the first read.
    """
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # not a TCP socket (a Unix socket in a test): nothing to probe
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    except OSError as exc:
        log.debug("TCP keepalive not switched on: %s", exc)
        return
    idle_option = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    for option, value in (
        (idle_option, idle_s),
        (getattr(socket, "TCP_KEEPINTVL", None), interval_s),
        (getattr(socket, "TCP_KEEPCNT", None), count),
    ):
        if option is None:
            continue
        try:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
        except OSError as exc:  # an older Windows: the option exists but is refused
            log.debug("TCP keepalive option %s not set: %s", option, exc)
