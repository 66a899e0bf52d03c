"""ASTM E1394 date and time fields (``YYYYMMDD[HHMM[SS]]``, local time), read and written, sans-IO.

The standard's times carry no zone: they are the analyser's wall clock. Which zone that is, is
site policy, so the zone is an argument here (the analyser drivers supply it).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

from drivers.errors import RemoteProtocolError

_FORMATS = {8: "%Y%m%d", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}


def parse_datetime(text: str, *, field: str, tz: tzinfo) -> datetime | None:
    """``YYYYMMDD[HHMM[SS]]`` in local time ``tz`` -> aware UTC; "" -> None.

    Raises ``RemoteProtocolError`` naming ``field``, with the text as its data, when it is not a
    date.
    """
    text = text.strip()
    if not text:
        return None
    fmt = _FORMATS.get(len(text))
    try:
        if fmt is None:
            raise ValueError(f"length {len(text)}")
        local = datetime.strptime(text, fmt)  # noqa: DTZ007 - local time, zone set below
        return local.replace(tzinfo=tz).astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # OverflowError: year 1 in a zone east of UTC
        raise RemoteProtocolError(
            "not an ASTM date/time (YYYYMMDD[HHMM[SS]])",
            field=field,
            data=text.encode("latin-1", "replace"),
        ) from exc


def format_datetime(moment: datetime, *, tz: tzinfo) -> str:
    """Aware datetime -> ``YYYYMMDDHHMMSS`` in local time ``tz``."""
    return moment.astimezone(tz).strftime("%Y%m%d%H%M%S")
