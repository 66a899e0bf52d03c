"""The driver registry: a plain dict from the config's ``driver`` key to how to build it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from drivers.analysers import generic_hl7
from drivers.session import Driver
from gateway.model import InboundMessage

Options = Mapping[str, str | int | float | bool]


@dataclass(frozen=True, slots=True)
class DriverSpec:
    """What `trygg drivers --json` shows, and the factory the gateway calls per instrument."""

    key: str
    protocol: str
    roles: tuple[str, ...]
    description: str
    factory: Callable[[str, Options], Driver]
    #: decode one stored raw message again (quarantine replay): (instrument, raw, received_at)
    decode: Callable[[str, bytes, datetime], InboundMessage]


def _hl7(instrument_id: str, options: Options) -> Driver:
    return generic_hl7.Hl7MllpReceiver(
        instrument_id, max_message_bytes=int(options.get("max_bytes", 1 << 20))
    )


DRIVERS: dict[str, DriverSpec] = {
    "hl7_mllp": DriverSpec(
        key="hl7_mllp",
        protocol="HL7 v2 over MLLP",
        roles=("receiver",),
        description="Generic HL7 v2 result sender (ORU^R01, ORU^R30/R32, OUL^R22) over MLLP; "
        "ACK after the message is stored",
        factory=_hl7,
        decode=generic_hl7.decode,
    ),
}
