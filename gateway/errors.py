"""The one error tree of Trygg: the drivers' root (``drivers.errors``) plus store and forwarding.

    GatewayError                  (drivers.errors)
    ├── ProtocolError             (drivers.errors)
    │   ├── LocalProtocolError    we broke the protocol (a bug or a misuse of a core)
    │   └── RemoteProtocolError   the peer broke it (bad bytes, bad structure)
    ├── TransportError            (drivers.errors) a stream could not be opened, or broke
    │   └── AckTimeout            (drivers.errors) no acknowledgement in time
    ├── ConfigError               (drivers.errors) the configuration is invalid
    ├── StoreError                the database refused or is unreachable
    └── ForwardError              the LIS could not be reached or answered wrongly

Third-party exceptions are translated at exactly one boundary with ``raise ... from exc``.
"""

from __future__ import annotations

from drivers.errors import (
    ConfigError,
    GatewayError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    TransportError,
    loggable,
)

__all__ = [
    "ConfigError",
    "ForwardError",
    "GatewayError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "StoreError",
    "TransportError",
    "loggable",
]


class StoreError(GatewayError):
    """The durable store refused a write or could not be reached."""


class ForwardError(GatewayError):
    """The LIS could not be reached, or answered in a way we cannot accept."""
