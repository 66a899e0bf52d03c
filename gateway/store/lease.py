"""The gateway lease: one gateway runs per store, renews a heartbeat, and fences every write.

One row in ``gateway_lease`` names the gateway that runs on this store (host, process, a
random instance id, since when), its last heartbeat and when its lease expires. A gateway
takes the row at start in one write transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: the
row is read FOR UPDATE, a missing row is inserted with ON CONFLICT DO NOTHING), so two
gateways starting at once cannot both win. The lease may be taken from its holder when:

* the holder released it (it stopped cleanly);
* it expired: no heartbeat for ``[store] lease_ttl_s`` (a crashed or powered-off PC);
* the holder ran on this host and its process is gone (``kill -9``, a crash): no need to
  wait for the expiry when we can see it is dead.

Otherwise a second gateway refuses to start (``LeaseHeldError``, naming the holder). The
running gateway renews the heartbeat every third of the ttl through its group-commit writer,
and the writer runs ``Lease.fence`` first in every transaction: once another gateway took the
lease over, no write of ours commits (no outbox row, no "sent" mark, no ingest), the
gateway is told (``on_lost``) and shuts down. The LIS worker child writes through the
parent's writer, so it runs under the parent's lease.

Expiry compares the holder's ``expires_at`` with the starting gateway's clock: on
PostgreSQL shared between PCs, their clocks must agree to well within the ttl (NTP).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, Insert, select, update

from gateway.errors import LeaseHeldError, LeaseLostError
from gateway.store import bulk
from gateway.store.tables import gateway_lease
from gateway.store.writer import Tx, run_in_transaction

log = logging.getLogger(__name__)

#: the one row's key: one gateway per store
NAME = "gateway"
ACTOR = "system:gateway"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine; True when we cannot tell."""
    if os.name != "posix" or pid <= 0:
        return True  # on Windows os.kill(pid, 0) is not a probe: wait for the expiry there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, under another user
        return True
    return True


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds (or last held) the lease, as its row says."""

    instance_id: str
    host: str
    pid: int
    site: str
    started_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    released_at: datetime | None = None

    def describe(self, zone: ZoneInfo) -> str:
        return (
            f"host {self.host}, process {self.pid} (site {self.site}), running since "
            f"{shown(self.started_at, zone)}, last heartbeat {shown(self.heartbeat_at, zone)}"
        )

    def snapshot(self) -> dict[str, Any]:
        return asdict(self)


def shown(when: datetime, zone: ZoneInfo) -> str:
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def may_take(
    holder: Holder | None,
    *,
    instance_id: str,
    host: str,
    now: datetime,
    alive: Callable[[int], bool] = process_alive,
) -> str | None:
    """Why the lease may be taken from ``holder`` now, or None while the holder holds it."""
    if holder is None:
        return "the store had no gateway yet"
    if holder.released_at is not None:
        return f"the last gateway ({holder.host}, process {holder.pid}) stopped cleanly"
    if holder.instance_id == instance_id:
        return "this gateway holds it already"
    if holder.expires_at <= now:
        return (
            f"the gateway on {holder.host} (process {holder.pid}) stopped renewing its "
            f"heartbeat at {holder.heartbeat_at.isoformat()}"
        )
    if holder.host == host and not alive(holder.pid):
        return f"process {holder.pid} of the gateway on this host ({host}) is gone"
    return None


def _insert_if_absent(dialect: str) -> Insert:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(gateway_lease).on_conflict_do_nothing(index_elements=["name"])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(gateway_lease).on_conflict_do_nothing(index_elements=["name"])


def read_holder(conn: Connection, *, for_update: bool = False) -> Holder | None:
    """The lease row as a ``Holder`` (FOR UPDATE on PostgreSQL when asked), or None."""
    query = select(gateway_lease).where(gateway_lease.c.name == NAME)
    if for_update:
        query = query.with_for_update()  # SQLite ignores it: BEGIN IMMEDIATE holds the lock
    row = conn.execute(query).one_or_none()
    if row is None:
        return None
    return Holder(
        instance_id=row.instance_id,
        host=row.host,
        pid=row.pid,
        site=row.site,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        expires_at=row.expires_at,
        released_at=row.released_at,
    )


_RENEW = (
    "UPDATE gateway_lease SET heartbeat_at = ?, expires_at = ?"
    " WHERE name = ? AND instance_id = ? AND released_at IS NULL"
)
_FENCE = "SELECT instance_id FROM gateway_lease WHERE name = ? AND released_at IS NULL"


class Lease:
    """This gateway's claim on the store: acquire at start, renew, fence writes, release."""

    def __init__(
        self,
        engine: Engine,
        *,
        ttl_s: float,
        site: str,
        zone: str = "Europe/Oslo",
        clock: Callable[[], datetime] | None = None,
        alive: Callable[[int], bool] = process_alive,
    ) -> None:
        self._engine = engine
        self.ttl = timedelta(seconds=ttl_s)
        self.site = site
        self.zone = ZoneInfo(zone)
        self._clock = clock or _utc_now
        self._alive = alive
        self.instance_id = secrets.token_hex(16)
        self.host = socket.gethostname()[:255] or "unknown-host"
        self.pid = os.getpid()
        self.held = False
        #: set once another gateway took the lease over; every later write is refused
        self.lost: LeaseLostError | None = None
        #: called once (on the writer thread) when the lease is found taken over
        self.on_lost: Callable[[LeaseLostError], None] | None = None
        self._lost_lock = threading.Lock()

    @property
    def heartbeat_s(self) -> float:
        """How often the running gateway renews: a third of the ttl, so two renewals may
        be late before the lease expires."""
        return self.ttl.total_seconds() / 3

    def _store(self) -> str:
        return self._engine.url.render_as_string(hide_password=True)

    def _mine(self, now: datetime) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "host": self.host,
            "pid": self.pid,
            "site": self.site,
            "started_at": now,
            "heartbeat_at": now,
            "expires_at": now + self.ttl,
            "released_at": None,
        }

    # -- start ---------------------------------------------------------------------------
    def acquire(self, now: datetime | None = None) -> Holder | None:
        """Take the lease, or raise ``LeaseHeldError`` naming its holder and what to do.

        Returns the holder it was taken over from (expired, or its process gone), else None.
        """
        taken = run_in_transaction(self._engine, self._acquire, now or self._clock())
        with self._lost_lock:
            self.held, self.lost = True, None
        if taken is not None:
            log.warning(
                "took the store's lease over from the gateway on %s (process %s): its last "
                "heartbeat was at %s",
                taken.host,
                taken.pid,
                shown(taken.heartbeat_at, self.zone),
            )
        return taken

    def _acquire(self, tx: Tx) -> Holder | None:
        conn, mine = tx.conn, self._mine(tx.now)
        inserted = conn.execute(
            _insert_if_absent(conn.dialect.name)
            .values(name=NAME, **mine)
            .returning(gateway_lease.c.name)
        ).first()
        if inserted is not None:
            self._audit(tx, "gateway.lease_acquired", "the store had no gateway yet")
            return None
        holder = read_holder(conn, for_update=True)
        if holder is None:  # deleted since the INSERT looked (PostgreSQL, READ COMMITTED)
            conn.execute(gateway_lease.insert().values(name=NAME, **mine))
            self._audit(tx, "gateway.lease_acquired", "the store had no gateway yet")
            return None
        why = may_take(
            holder, instance_id=self.instance_id, host=self.host, now=tx.now, alive=self._alive
        )
        if why is None:
            raise LeaseHeldError(self._held_message(holder))
        ours = holder.instance_id == self.instance_id and holder.released_at is None
        if ours:
            mine["started_at"] = holder.started_at  # acquiring again renews, keeps "since"
        conn.execute(update(gateway_lease).where(gateway_lease.c.name == NAME).values(**mine))
        if ours:
            return None
        if holder.released_at is None:  # expired, or its process is gone
            self._audit(tx, "gateway.lease_taken_over", why, before=holder.snapshot())
            return holder
        self._audit(tx, "gateway.lease_acquired", why)
        return None

    def _held_message(self, holder: Holder) -> str:
        where = "" if holder.host == self.host else f" on {holder.host}"
        expires = shown(holder.expires_at, self.zone)
        return (
            f"another Trygg gateway is running on this store ({self._store()}): "
            f"{holder.describe(self.zone)}; its lease lasts until {expires} unless it renews "
            "it. Only one gateway may run per store (two would send results to the LIS "
            f"twice), so this one does not start. Stop the other gateway{where} first. If "
            f"that PC crashed or lost power, start this one again after {expires}: it then "
            "takes the lease over ([store] lease_ttl_s after the last heartbeat)."
        )

    def _audit(
        self, tx: Tx, action: str, reason: str, before: dict[str, Any] | None = None
    ) -> None:
        tx.audit(
            actor=ACTOR,
            action=action,
            entity="gateway",
            entity_id=self.instance_id,
            reason=reason,
            before=before,
            after={"host": self.host, "pid": self.pid, "site": self.site},
        )

    # -- running -------------------------------------------------------------------------
    def renew(self, tx: Tx) -> None:
        """A writer job: move the heartbeat and the expiry on, or raise ``LeaseLostError``."""
        now = bulk.db_time(tx.conn, tx.now)
        until = bulk.db_time(tx.conn, tx.now + self.ttl)
        if bulk.execute(tx.conn, _RENEW, (now, until, NAME, self.instance_id)) != 1:
            raise self._lose(tx.conn)

    def fence(self, conn: Connection) -> None:
        """Run first in every writer transaction: refuse it unless we still hold the lease.

        On PostgreSQL the row is read FOR SHARE, so a takeover waits for our transaction to
        commit and our next one sees the new holder; on SQLite BEGIN IMMEDIATE already
        orders the two.
        """
        if self.lost is not None:
            raise self.lost
        lock = "" if conn.dialect.name == "sqlite" else " FOR SHARE"
        rows = bulk.fetch(conn, _FENCE + lock, (NAME,))
        if not rows or rows[0][0] != self.instance_id:
            raise self._lose(conn)

    def _lose(self, conn: Connection) -> LeaseLostError:
        holder = read_holder(conn)
        if holder is None or holder.released_at is not None:
            who = "its row was released or removed by someone else"
        else:
            who = f"the gateway on {holder.describe(self.zone)} took it over"
        error = LeaseLostError(
            f"this gateway (host {self.host}, process {self.pid}) no longer holds the store's "
            f"lease ({self._store()}): {who}. Another gateway runs on this store now, so this "
            "one stops forwarding and shuts down: two would send results to the LIS twice. "
            "Make sure only one PC runs Trygg for this store; if this one should, stop the "
            "other and start this one again."
        )
        with self._lost_lock:
            first = self.lost is None
            if first:
                self.lost, self.held = error, False
        if first and self.on_lost is not None:
            self.on_lost(error)
        return self.lost or error

    # -- stop ----------------------------------------------------------------------------
    def release(self, now: datetime | None = None) -> bool:
        """Give the lease up (a clean stop); False when we did not hold it any more."""
        if not self.held:
            return False

        def job(tx: Tx) -> bool:
            released = tx.conn.execute(
                update(gateway_lease)
                .where(
                    gateway_lease.c.name == NAME,
                    gateway_lease.c.instance_id == self.instance_id,
                    gateway_lease.c.released_at.is_(None),
                )
                .values(released_at=tx.now, expires_at=tx.now)
            ).rowcount
            if released:
                self._audit(tx, "gateway.lease_released", "the gateway stopped")
            return bool(released)

        done = run_in_transaction(self._engine, job, now or self._clock())
        self.held = False
        return done


__all__ = ["Holder", "Lease", "may_take", "process_alive", "read_holder"]
