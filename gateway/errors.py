"""The one error tree of Trygg: the drivers' root (``drivers.errors``) plus store and forwarding.

    GatewayError                  (drivers.errors)
    ├── ProtocolError             (drivers.errors)
    │   ├── LocalProtocolError    we broke the protocol (a bug or a misuse of a core)
    │   └── RemoteProtocolError   the peer broke it (bad bytes, bad structure)
    ├── TransportError            (drivers.errors) a stream could not be opened, or broke
    │   └── AckTimeout            (drivers.errors) no acknowledgement in time
    ├── ConfigError               (drivers.errors) the configuration is invalid
    │   └── ListenError           a configured listening address cannot be bound at start
    ├── StoreError                the database refused or is unreachable
    │   ├── LeaseHeldError        another gateway holds this store's lease: we may not start
    │   └── LeaseLostError        another gateway took our lease over: we must stop
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
    "LeaseHeldError",
    "LeaseLostError",
    "ListenError",
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


class ListenError(ConfigError):
    """A listening address in the configuration cannot be bound (the port is taken, or the
    address is not this machine's); the message names the key, the address and what to do."""


class LeaseHeldError(StoreError):
    """Another gateway holds the store's lease; the message names it and what to do."""


class LeaseLostError(StoreError):
    """Another gateway took this gateway's lease over; this one stops forwarding and exits."""
