"""The simulated ASTM analysers' models, one per analyser profile, keyed by the profile's key.

A profile (``drivers.analysers.profiles``) reads what an analyser sends; its model here makes
up what that analyser would send: a plausible run (``AstmModel.sample``) and its records
(``AstmModel.message``). Seeded, a model repeats its runs exactly. Its control materials
(``AstmModel.qc_materials``, ``simulators.astm_models.qc``) keep their lots, and control values
scatter around their targets, so a QC history forms.
"""

from __future__ import annotations

from drivers.analysers.astm_base import AstmProfile
from drivers.analysers.profiles.afinion2 import PROFILE as AFINION2
from drivers.analysers.profiles.astm_generic import GENERIC
from drivers.analysers.profiles.clinitek_status import PROFILE as CLINITEK_STATUS
from drivers.analysers.profiles.dca_vantage import PROFILE as DCA_VANTAGE
from drivers.analysers.profiles.sysmex_xn import PROFILE as SYSMEX_XN
from drivers.analysers.profiles.sysmex_xn import PROFILE_XP as SYSMEX_XP
from drivers.analysers.profiles.yumizen_h500 import PROFILE as YUMIZEN_H500
from drivers.errors import ConfigError
from simulators.astm_models import (
    afinion2,
    astm_generic,
    clinitek_status,
    dca_vantage,
    sysmex_xn,
    yumizen_h500,
)
from simulators.astm_models.qc import ANY_CONTROL, ControlRun, QcMaterial
from simulators.astm_models.sample import AstmModel, SimSample

__all__ = [
    "ANY_CONTROL",
    "MODELS",
    "AstmModel",
    "ControlRun",
    "QcMaterial",
    "SimSample",
    "model_for",
]

#: profile key -> the model of that analyser
MODELS: dict[str, AstmModel] = {
    GENERIC.key: astm_generic.MODEL,
    AFINION2.key: afinion2.MODEL,
    DCA_VANTAGE.key: dca_vantage.MODEL,
    CLINITEK_STATUS.key: clinitek_status.MODEL,
    SYSMEX_XN.key: sysmex_xn.XN_MODEL,
    SYSMEX_XP.key: sysmex_xn.XP_MODEL,
    YUMIZEN_H500.key: yumizen_h500.MODEL,
}


def model_for(profile: AstmProfile) -> AstmModel:
    """The model of the analyser ``profile`` reads; ``ConfigError`` when none is simulated."""
    model = MODELS.get(profile.key)
    if model is None:
        known = ", ".join(sorted(MODELS))
        raise ConfigError(f"astm simulator: no model of {profile.key!r} (simulated: {known})")
    return model
