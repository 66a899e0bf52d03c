"""Composition root: one TaskGroup owns the instrument sessions, the forwarder, the bus and web."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update

from drivers.model import InboundMessage
from drivers.ports import ConnectionState
from drivers.registry import DRIVERS
from drivers.session import InstrumentSession
from gateway.bus.publisher import EventBus, MqttBus, NullBus
from gateway.certification_watch import CertificationWatch
from gateway.config import Config
from gateway.errors import LeaseLostError, NotStoredError, StoreError, StoreUnavailableError
from gateway.ingest import Ingestor, IngestOutcome
from gateway.lis.forwarder import Forwarder
from gateway.lis.worker import ForwarderProcess
from gateway.listeners import bind_sessions, bind_tcp
from gateway.orders.receiver import OrderReceiver
from gateway.orders.store import ORDER_SOURCE, StoreWorklist
from gateway.qc_watch import QcWatch
from gateway.rules import context_from_config
from gateway.store.check import backend_of, check_store, count_dropped_connections, require_healthy
from gateway.store.engine import make_engine, upgrade
from gateway.store.health import StoreHealth
from gateway.store.lease import Lease
from gateway.store.tables import instruments
from gateway.store.watch import StoreWatch
from gateway.store.writer import Event, GroupCommitWriter, Tx, run_in_transaction
from gateway.store_alarm import StoreAlarm, not_stored
from gateway.texts import NOT_CONNECTED_YET

log = logging.getLogger(__name__)


@dataclass
class InstrumentLive:
    """In-memory view of one instrument for the live terminal and the dashboard."""

    connected: bool = False
    detail: str = ""
    #: the connection state's code (``drivers.ports.ConnectionState``; "" before any)
    state: str = ""
    messages: int = 0
    results: int = 0
    quarantined: int = 0


@dataclass
class LiveStats:
    instruments: dict[str, InstrumentLive] = field(default_factory=dict)


def register_instruments(tx: Tx, config: Config) -> None:
    """Upsert the configured instruments so the store knows them (connection state starts off)."""
    existing = {r for (r,) in tx.conn.execute(select(instruments.c.id))}
    for inst in config.instruments:
        values = {
            "driver": inst.driver,
            "url": inst.url,
            "connected": False,
            "state_code": NOT_CONNECTED_YET,
            "state_detail": "not connected yet",
        }
        if inst.id in existing:
            tx.conn.execute(update(instruments).where(instruments.c.id == inst.id).values(**values))
        else:
            tx.conn.execute(instruments.insert().values(id=inst.id, messages_received=0, **values))


def _connection_job(
    tx: Tx, instrument_id: str, connected: bool, detail: str, state: ConnectionState
) -> None:
    tx.conn.execute(
        update(instruments)
        .where(instruments.c.id == instrument_id)
        .values(
            connected=connected,
            state_code=state.value,
            state_detail=detail[:255],
            last_seen_at=tx.now,
        )
    )
    tx.audit(
        actor=f"instrument:{instrument_id}",
        action="instrument.connected" if connected else "instrument.disconnected",
        entity="instrument",
        entity_id=instrument_id,
        reason=detail[:500],
    )
    tx.event(
        "instrument",
        instrument_id,
        {"connected": connected, "state": state.value, "detail": detail[:255]},
    )


class Gateway:
    """The running gateway. Also the drivers' ``Sink``.

    ``clock`` is the lease's clock (when the other gateway's lease counts as expired).
    """

    def __init__(
        self,
        config: Config,
        *,
        engine: Engine | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.engine = engine or make_engine(config.store.url)
        self.lease = Lease(
            self.engine,
            ttl_s=config.store.lease_ttl_s,
            site=config.site.name,
            zone=config.site.timezone,
            clock=clock,
        )
        self.bus: EventBus = (
            MqttBus(config.mqtt, config.site.name) if config.mqtt is not None else NullBus()
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        #: failed by a write or check that meets a broken store; while failed, nothing is ACKed
        self.store_health = StoreHealth(backend_of(config.store.url))
        #: messages not acknowledged because the store was failed or the write failed
        self.refused = 0
        count_dropped_connections(self.engine, self.store_health)
        self.writer = GroupCommitWriter(
            self.engine,
            max_batch=config.store.group_commit_max,
            on_events=self._events_committed,
            health=self.store_health,
        )
        self.store_health.on_change = StoreAlarm(config.store.url, self.bus, self.writer)
        self.store_watch = StoreWatch(
            self.store_health,
            lambda: check_store(config.store.url, engine=self.engine),
            interval_s=config.store.check_interval_s,
            recheck_s=config.store.recheck_interval_s,
            probe=lambda: self.writer.write(self.lease.renew, urgent=True),
        )
        #: recertification reminders and inactivity warnings: at start, then daily
        self.certification_watch = CertificationWatch(self.writer, config)
        #: QC schedules: a test whose controls are due becomes overdue (lockout, deviation)
        self.qc_watch = QcWatch(self.writer, config)
        self.forwarder: Forwarder | ForwarderProcess | None = None
        if config.lis is not None:
            self.forwarder = (
                ForwarderProcess(config, self.writer)
                if config.lis.worker == "process"
                else Forwarder(self.writer, config.lis)
            )
        self.ingestor = Ingestor(self.writer, context_from_config(config))
        self.live = LiveStats({i.id: InstrumentLive() for i in config.instruments})
        self.worklist = StoreWorklist(self.engine)
        self.sessions = [
            InstrumentSession(
                inst.id,
                inst.url,
                DRIVERS[inst.driver].factory(inst.id, inst.options, worklist=self.worklist),
                self,
                trace=inst.trace,
                idle=inst.idle_limits,
                connections=inst.connections,
            )
            for inst in config.instruments
            if inst.enabled
        ]
        if config.lis is not None and config.lis.orders_url is not None:
            self.sessions.append(
                InstrumentSession(
                    ORDER_SOURCE,
                    config.lis.orders_url,
                    OrderReceiver(self.writer, accepting=lambda: self.store_health.ok),
                    self,
                    trace=config.lis.trace,
                    idle=config.lis.orders_idle_limits,
                    connections=config.lis.orders_connections,
                )
            )
        #: the LIS's order connection: (connected, detail)
        self.orders_link: tuple[bool, str] = (False, "not connected yet")
        self.ready = asyncio.Event()

    # -- Sink -------------------------------------------------------------------------------
    async def ingest(self, message: InboundMessage) -> IngestOutcome:
        """Store ``message`` durably, or raise ``StoreUnavailableError`` (a ``NotStoredError``:
        the driver does not acknowledge) while the store is failed or when the write fails."""
        if not self.store_health.ok:
            raise self._not_stored()  # nothing is written into a store known to be broken
        try:
            outcome = await self.ingestor.ingest(message)
        except NotStoredError:
            self.refused += 1
            raise
        except StoreError as exc:
            raise self._not_stored(exc) from exc
        if not self.store_health.ok:
            # committed, but the store failed meanwhile (a check found it damaged): no ACK.
            # The analyser sends it again; once healthy, the copy is a known duplicate.
            raise self._not_stored()
        live = self.live.instruments.setdefault(message.instrument_id, InstrumentLive())
        live.messages += 1
        live.results += outcome.stored
        live.quarantined += int(outcome.quarantined)
        if outcome.queued and self.forwarder is not None:
            self.forwarder.wake()
        return outcome

    def accepting(self) -> bool:
        """Whether a message could be stored now (``drivers.ports.Accepting``)."""
        return self.store_health.ok

    def _not_stored(self, cause: StoreError | None = None) -> StoreUnavailableError:
        self.refused += 1
        return not_stored(self.store_health, cause)

    def connection_changed(
        self,
        instrument_id: str,
        connected: bool,
        detail: str,
        state: ConnectionState | None = None,
    ) -> None:
        if state is None:
            state = ConnectionState.CONNECTED if connected else ConnectionState.CONNECTION_LOST
        if instrument_id == ORDER_SOURCE:
            if self.orders_link != (connected, detail):
                self.orders_link = (connected, detail)
                log.info("LIS orders %s: %s", "connected" if connected else "not connected", detail)
            return
        live = self.live.instruments.setdefault(instrument_id, InstrumentLive())
        if live.connected == connected and live.detail == detail and live.state == state:
            return  # a retry loop reporting the same failure: no new audit row each time
        live.connected, live.detail, live.state = connected, detail, state.value
        log.info(
            "instrument %s %s: %s",
            instrument_id,
            "connected" if connected else "not connected",
            detail,
        )
        self.writer.submit(lambda tx: _connection_job(tx, instrument_id, connected, detail, state))

    # -- events -----------------------------------------------------------------------------
    def _events_committed(self, events: list[Event]) -> None:
        """Called on the writer thread after a commit: hand the events to the loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._publish, events)

    def _publish(self, events: list[Event]) -> None:
        for kind, instrument, payload in events:
            self.bus.publish(kind, instrument, payload)

    # -- store health -----------------------------------------------------------------------
    def check_store_at_start(self) -> None:
        """Refuse to start (``StoreDamagedError``, saying what to do) on a store that fails
        its check; a SQLite file that does not exist yet is a new store."""
        report = require_healthy(self.config.store.url, engine=self.engine)
        if report is not None:
            self.store_health.checked(report.ok, report.seconds)

    # -- lifecycle --------------------------------------------------------------------------
    def prepare(self) -> None:
        """Check the store (``StoreDamagedError`` when it fails), migrate the schema, take the
        store's lease (``LeaseHeldError`` when another gateway runs on it) and register
        instruments (blocking; runs before the loop work)."""
        self.check_store_at_start()
        upgrade(self.engine)
        self.lease.acquire()
        run_in_transaction(self.engine, lambda tx: register_instruments(tx, self.config))

    def _listen_names(self) -> dict[str, tuple[str, str]]:
        names = {
            inst.id: (f"instruments[{index}].url", f"instrument {inst.id}")
            for index, inst in enumerate(self.config.instruments)
        }
        names[ORDER_SOURCE] = ("lis.orders_url", "the LIS orders listener")
        return names

    async def run(self, *, web: bool | None = None) -> None:
        """Run until cancelled; cancellation stops every task and flushes the writer.

        Start fails with ``LeaseHeldError`` while another gateway runs on the store and with
        ``ListenError`` when a listening address cannot be bound; a running gateway whose
        lease another one took over stops everything and raises ``LeaseLostError``.
        """
        loop = self._loop = asyncio.get_running_loop()
        serve_web = self.config.web.enabled if web is None else web
        lost = asyncio.Event()

        def lease_lost(_error: LeaseLostError) -> None:  # on the writer thread
            with contextlib.suppress(RuntimeError):  # the loop is closed: we are stopping
                loop.call_soon_threadsafe(lost.set)

        self.lease.on_lost = lease_lost
        web_sockets: list[socket.socket] = []
        try:
            await asyncio.to_thread(self.prepare)
            await bind_sessions(self.sessions, self._listen_names())
            if serve_web:
                if self.config.web.is_remote:
                    log.warning(
                        "web: listening on %s, reachable from other PCs (web.allow_remote = "
                        "true); the pages speak plain HTTP, so passwords and session cookies "
                        "cross the network in clear unless a TLS proxy is in front",
                        self.config.web.listen,
                    )
                web_sockets = bind_tcp(
                    self.config.web.host,
                    self.config.web.port,
                    key="web.listen",
                    what="the web pages and API",
                )
            self.writer.fence = self.lease.fence  # no write commits once the lease is gone
            self.writer.start()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._keep_lease(lost), name="lease")
                group.create_task(self.store_watch.run(), name="store-check")
                group.create_task(self.certification_watch.run(), name="certifications")
                group.create_task(self.qc_watch.run(), name="qc-schedules")
                if isinstance(self.bus, MqttBus):
                    group.create_task(self.bus.run(), name="mqtt")
                if self.forwarder is not None:
                    group.create_task(self.forwarder.run(), name="lis-forwarder")
                for session in self.sessions:
                    group.create_task(session.run(), name=f"instrument-{session.instrument_id}")
                if serve_web:
                    group.create_task(self._serve_web(web_sockets), name="web")
                self.ready.set()
        except BaseExceptionGroup:
            if self.lease.lost is not None:
                raise self.lease.lost from None  # the cause; the rest followed from it
            raise
        finally:
            for sock in web_sockets:
                sock.close()
            for session in self.sessions:
                await session.aclose()
            await asyncio.to_thread(self.writer.stop)
            try:
                await asyncio.to_thread(self.lease.release)
            except StoreError as exc:  # it expires by itself: the next start waits the ttl
                log.warning("could not release the store's lease: %s", exc)
            self.engine.dispose()

    async def _keep_lease(self, lost: asyncio.Event) -> None:
        """Renew the lease every third of its ttl through the writer (its urgent lane, so a
        flood of ingest does not delay it). When another gateway took the lease over (seen
        here or by the writer's fence), raise: the TaskGroup then stops the forwarder and
        everything else."""
        while self.lease.lost is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.lease.heartbeat_s):
                    await lost.wait()
            if self.lease.lost is not None:
                break
            try:
                await self.writer.write(self.lease.renew, urgent=True)
            except LeaseLostError:
                break
            except StoreError as exc:  # the store is away: the fence guards the writes
                log.warning("could not renew the store's lease: %s", exc)
        assert self.lease.lost is not None
        log.error("%s", self.lease.lost)
        raise self.lease.lost

    async def _serve_web(self, sockets: list[socket.socket]) -> None:
        import uvicorn

        from gateway.web.app import create_app

        class _Server(uvicorn.Server):
            """Leaves signals to the gateway: Ctrl-C cancels the TaskGroup, which stops us."""

            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        server = _Server(
            uvicorn.Config(
                create_app(self.config, self.engine, gateway=self),
                host=self.config.web.host,
                port=self.config.web.port,
                log_level="warning",
                lifespan="off",
            )
        )
        # uvicorn closes its listening socket only on its own shutdown path: on cancellation,
        # ask it to exit and wait for that instead of abandoning serve() mid-way. The sockets
        # were bound at start (``bind_tcp``), so a taken port is our error, not uvicorn's exit.
        serving = asyncio.ensure_future(server.serve(sockets=sockets))
        try:
            await asyncio.shield(serving)
        finally:
            server.should_exit = True
            await serving

    def status(self) -> Mapping[str, Any]:
        fwd = self.forwarder
        return {
            "lis": {
                "connected": fwd.connected if fwd else False,
                "last_error": fwd.last_error if fwd else "",
                "sent": fwd.sent if fwd else 0,
                "retries": fwd.retries if fwd else 0,
                "orders_connected": self.orders_link[0],
                "orders_detail": self.orders_link[1],
            },
            "writer": {"batches": self.writer.batches, "jobs": self.writer.jobs},
            "store": {"ok": self.store_health.ok, "refused": self.refused},
        }


__all__ = ["Gateway"]
