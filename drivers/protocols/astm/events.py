"""Events the ASTM E1381 link core (``link.Link``) hands to its driver."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A whole message arrived: the text of its frames joined, every frame checked and ACKed."""

    message: bytes


@dataclass(frozen=True, slots=True)
class MessageSent:
    """The peer acknowledged the last frame of message ``id`` (from ``Link.send_message``)."""

    id: int


@dataclass(frozen=True, slots=True)
class SendFailed:
    """Message ``id`` was abandoned (timeout, too many NAKs); the link sent EOT."""

    id: int
    reason: str


@dataclass(frozen=True, slots=True)
class LinkIdle:
    """The link returned to the neutral state after a session (either direction)."""


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """The peer broke E1381 (bad frame, stray byte, receive timeout); the link recovered.

    ``detail`` never quotes the peer's bytes, so it may be logged; they are in ``data`` (they
    may be patient data).
    """

    detail: str
    data: bytes = b""


Event = MessageReceived | MessageSent | SendFailed | LinkIdle | ProtocolViolation
