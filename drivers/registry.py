"""The driver registry: a plain dict from the config's ``driver`` key to how to build it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Protocol

from drivers.analysers import astm_host, generic_hl7
from drivers.analysers.astm_base import AstmProfile
from drivers.analysers.profiles import (
    afinion2,
    astm_generic,
    clinitek_status,
    dca_vantage,
    sysmex_xn,
    yumizen_h500,
)
from drivers.errors import ConfigError
from drivers.model import InboundMessage
from drivers.ports import Driver, Worklist
from drivers.protocols.astm.query import STANDARD_SPECIMEN_COMPONENT, NoInformationForm

Options = Mapping[str, str | int | float | bool]


class DriverFactory(Protocol):
    """Builds one instrument's driver from its options; ``worklist`` answers host queries
    (drivers that take no queries ignore it)."""

    def __call__(
        self, instrument_id: str, options: Options, *, worklist: Worklist | None = None
    ) -> Driver: ...


@dataclass(frozen=True, slots=True)
class DriverSpec:
    """What `trygg drivers --json` shows, and the factory the gateway calls per instrument."""

    key: str
    protocol: str
    roles: tuple[str, ...]
    description: str
    factory: DriverFactory
    #: decode one stored raw message again (quarantine replay): (instrument, raw, received_at)
    decode: Callable[[str, bytes, datetime], InboundMessage]
    #: how the driver tells a control (QC) run from a patient sample (`trygg drivers`)
    qc_recognition: str = ""


def _hl7(instrument_id: str, options: Options, *, worklist: Worklist | None = None) -> Driver:
    return generic_hl7.Hl7MllpReceiver(
        instrument_id, max_message_bytes=int(options.get("max_bytes", 1 << 20))
    )


#: Every ASTM analyser profile; each becomes a driver keyed by its ``profile.key``.
ASTM_PROFILES: tuple[AstmProfile, ...] = (
    astm_generic.GENERIC,
    afinion2.PROFILE,
    dca_vantage.PROFILE,
    clinitek_status.PROFILE,
    sysmex_xn.PROFILE,
    sysmex_xn.PROFILE_XP,
    yumizen_h500.PROFILE,
)


def _option_bool(options: Options, name: str, default: bool | None) -> bool | None:
    value = options.get(name, default)
    if value is None or isinstance(value, bool):
        return value
    raise ConfigError(f"driver option {name!r}: expected true or false, got {value!r}")


def _astm_factory(profile: AstmProfile) -> DriverFactory:
    """Options: ``lenient`` (bool, overrides the profile), ``no_information`` ("query" or
    "order", the form of "no orders" answers to host queries), ``query_specimen_component``
    (where Q.3 carries the specimen ID: 2 in LIS2-A2, 3 on Roche cobas)."""

    def factory(
        instrument_id: str, options: Options, *, worklist: Worklist | None = None
    ) -> Driver:
        form = str(options.get("no_information", NoInformationForm.QUERY_STATUS.value))
        if form not in {f.value for f in NoInformationForm}:
            allowed = ", ".join(repr(f.value) for f in NoInformationForm)
            raise ConfigError(f"driver option 'no_information': {form!r} is not one of {allowed}")
        component = options.get("query_specimen_component", STANDARD_SPECIMEN_COMPONENT)
        if isinstance(component, bool) or not isinstance(component, int) or component < 1:
            raise ConfigError(
                f"driver option 'query_specimen_component': expected a number from 1, "
                f"got {component!r}"
            )
        return astm_host.AstmHostDriver(
            instrument_id,
            profile,
            lenient=_option_bool(options, "lenient", None),
            no_information=NoInformationForm(form),
            specimen_component=component,
            worklist=worklist,
        )

    return factory


def _astm_spec(profile: AstmProfile) -> DriverSpec:
    return DriverSpec(
        key=profile.key,
        protocol="ASTM E1381/E1394",
        roles=("host",),
        description=profile.description,
        factory=_astm_factory(profile),
        decode=partial(astm_host.decode, profile),
        qc_recognition=profile.qc_recognition,
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
        qc_recognition="SPM-11 specimen role Q, E or QC (or QC in its text); without a patient "
        "ID, also QC, CONTROL or KONTROLL at a word start in the specimen ID or an OBX-3 text; "
        "no control lot or level is read (a site gives its HL7 controls' lot on the QC pages)",
    ),
    **{profile.key: _astm_spec(profile) for profile in ASTM_PROFILES},
}
