"""The driver registry against what the README promises and what the simulators can play."""

from __future__ import annotations

import re
from pathlib import Path

from drivers.registry import ASTM_PROFILES, DRIVERS
from simulators.astm_models import MODELS

README = Path(__file__).resolve().parents[2] / "README.md"
#: a driver key as the README writes one: `astm_...`, `hl7_...` or `poct1a_...` in backticks, or
#: the value of a ``driver = "..."`` line in a config example
_KEY = re.compile(r"`((?:astm|hl7|poct1a?)_[a-z0-9_]+)`|\bdriver\s*=\s*\"([a-z0-9_]+)\"")


def readme_driver_keys() -> set[str]:
    text = README.read_text(encoding="utf-8")
    return {quoted or assigned for quoted, assigned in _KEY.findall(text)}


def test_every_driver_key_the_readme_names_is_registered() -> None:
    named = readme_driver_keys()
    assert "astm_generic" in named and "hl7_mllp" in named  # the pattern still finds the list
    assert named - set(DRIVERS) == set()


def test_both_sysmex_series_are_registered() -> None:
    assert {"astm_sysmex_xn", "astm_sysmex_xp"} <= set(DRIVERS)
    assert DRIVERS["astm_sysmex_xp"].protocol == "ASTM E1381/E1394"


def test_every_astm_profile_has_a_simulator_model() -> None:
    # `trygg simulate --profile KEY` and the demo take any registered ASTM driver
    assert set(MODELS) == {profile.key for profile in ASTM_PROFILES}
