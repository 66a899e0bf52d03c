"""Personal-data masking of what the web shows: the one scrub lives in ``gateway.privacy``
(the CLI and the MQTT events use it too); the pages and the API import it from here."""

from __future__ import annotations

from gateway.privacy import (
    scrub,
    scrub_deviations,
    scrub_outbox,
    scrub_quarantine,
    scrub_quarantine_row,
    scrub_result,
)

__all__ = [
    "scrub",
    "scrub_deviations",
    "scrub_outbox",
    "scrub_quarantine",
    "scrub_quarantine_row",
    "scrub_result",
]
