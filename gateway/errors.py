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
    │   ├── LeaseLostError        another gateway took our lease over: we must stop
    │   ├── StoreDamagedError     the store fails its check at start: we may not start
    │   └── StoreUnavailableError a message was not stored (also a NotStoredError): no ACK
    ├── NotStoredError            (drivers.errors) the sink did not keep a message
    └── ForwardError              the LIS could not be reached or answered wrongly

Third-party exceptions are translated at exactly one boundary with ``raise ... from exc``.
"""

from __future__ import annotations

from drivers.errors import (
    ConfigError,
    GatewayError,
    LocalProtocolError,
    NotStoredError,
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
    "NotStoredError",
    "ProtocolError",
    "RemoteProtocolError",
    "StoreDamagedError",
    "StoreError",
    "StoreUnavailableError",
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


class StoreDamagedError(StoreError):
    """The store fails its integrity or connection check at start; the message names the
    store, what the check found and what to do (restore from a backup)."""


class StoreUnavailableError(StoreError, NotStoredError):
    """A message was not stored because the store is broken or away: the driver does not
    acknowledge it, and the analyser sends it again."""
