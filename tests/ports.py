"""Free loopback TCP ports for tests, never the same one twice in a test run.

Binding port 0 lets the OS choose, but the OS may hand out a port it just gave us again once
that socket is closed: two "free" ports for one test could then be the same, and an analyser
simulator would talk to the LIS simulator instead of the gateway.
"""

from __future__ import annotations

import socket

_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago and that no caller has had yet."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
