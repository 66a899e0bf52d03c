"""Site policy the analyser drivers share: the zone of the analysers' clocks."""

from __future__ import annotations

from zoneinfo import ZoneInfo

#: Analysers keep local wall-clock time, and Norwegian sites run them on Oslo time. The
#: protocol codecs take the zone as an argument; the drivers pass this one.
ANALYSER_TZ = ZoneInfo("Europe/Oslo")
