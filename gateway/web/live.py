"""Live state from a gateway running in this process, merged with what the store knows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.config import Config
from gateway.store.health import StoreHealth


@dataclass(frozen=True, slots=True)
class LiveInstrument:
    """A copy of ``gateway.app.InstrumentLive`` taken on the event loop."""

    connected: bool
    detail: str
    state: str
    messages: int
    results: int
    quarantined: int


def live_snapshot(gateway: object | None) -> dict[str, LiveInstrument]:
    """Copy the running gateway's in-memory instrument state (call on the loop's thread)."""
    table = getattr(getattr(gateway, "live", None), "instruments", None)
    if not isinstance(table, dict):
        return {}
    return {
        str(instrument_id): LiveInstrument(
            connected=bool(getattr(live, "connected", False)),
            detail=str(getattr(live, "detail", "")),
            state=str(getattr(live, "state", "")),
            messages=int(getattr(live, "messages", 0)),
            results=int(getattr(live, "results", 0)),
            quarantined=int(getattr(live, "quarantined", 0)),
        )
        for instrument_id, live in table.copy().items()
    }


def store_health_of(gateway: object | None) -> StoreHealth | None:
    """The running gateway's store health, or None when no gateway runs in this process."""
    health = getattr(gateway, "store_health", None)
    return health if isinstance(health, StoreHealth) else None


def store_alarm(gateway: object | None) -> dict[str, Any] | None:
    """What the banner on every page says while the store is failed (None: no banner)."""
    health = store_health_of(gateway)
    problem = health.problem if health is not None else None
    if health is None or problem is None:
        return None
    return {
        "problem": problem.code,
        "source": problem.source,
        "since": problem.since,
        "backend": health.backend,
        "detail": problem.detail,
    }


def gateway_status(gateway: object | None) -> dict[str, Any] | None:
    """``gateway.status()`` as a plain dict, or None when no gateway runs in this process."""
    status = getattr(gateway, "status", None)
    if gateway is None or not callable(status):
        return None
    return {str(key): value for key, value in status().items()}


def merge_instruments(
    config: Config, rows: Sequence[Mapping[str, Any]], live: Mapping[str, LiveInstrument]
) -> list[dict[str, Any]]:
    """Configured instruments first (config order), then any the store knows from before.

    The store gives last-message times and counts; the running gateway, when there is one,
    gives the current connection state (fresher than the store's).
    """
    configured = {inst.id: inst for inst in config.instruments}
    stored = {str(row["id"]): row for row in rows}
    order = [*configured, *(i for i in stored if i not in configured)]
    merged = []
    for instrument_id in order:
        row = stored.get(instrument_id, {})
        conf = configured.get(instrument_id)
        item: dict[str, Any] = {
            "id": instrument_id,
            "name": conf.name if conf else "",
            "location": conf.location if conf else "",
            "configured": conf is not None,
            "enabled": conf.enabled if conf else False,
            "driver": row.get("driver") or (conf.driver if conf else ""),
            "url": row.get("url") or (conf.url if conf else ""),
            "connected": bool(row.get("connected", False)),
            "state": str(row.get("state", "")),
            "detail": str(row.get("detail", "")),
            "last_seen_at": row.get("last_seen_at"),
            "last_message_at": row.get("last_message_at"),
            "messages": int(row.get("messages", 0)),
            "live": None,
        }
        now = live.get(instrument_id)
        if now is not None:
            item["connected"] = now.connected
            if now.state or now.detail:  # the gateway has heard from the session
                item["state"], item["detail"] = now.state, now.detail or item["detail"]
            item["live"] = {
                "messages": now.messages,
                "results": now.results,
                "quarantined": now.quarantined,
            }
        merged.append(item)
    return merged
