"""MLLP over a ByteStream: the one client (send, await the ACK) and the one server loop."""

from __future__ import annotations

from drivers.mllp.client import MllpClient
from drivers.mllp.server import Broken, Handler, MllpServer, serve_mllp

__all__ = ["Broken", "Handler", "MllpClient", "MllpServer", "serve_mllp"]
