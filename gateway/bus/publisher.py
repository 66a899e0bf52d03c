"""MQTT event publisher: topics, JSON events, a bounded drop-oldest queue, reconnect supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import secrets
import socket
import threading
from collections import deque
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

import aiomqtt

from gateway.config import MqttConfig
from gateway.privacy import scrub_event

log = logging.getLogger(__name__)

_WINDOW = 100  # events in flight at once (QoS 1, awaiting PUBACK)
_CONNECT_TIMEOUT_S = 10.0  # CONNACK and PUBACK timeout
_KEEPALIVE_S = 30
_TOPIC_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_", "\0": "_"})

_Item = tuple[str, bytes]  # (topic, JSON payload)


class EventBus(Protocol):
    """Where the pipeline announces state changes; ``publish`` never blocks and never raises."""

    connected: bool

    def publish(self, kind: str, instrument: str, payload: Mapping[str, object]) -> None: ...


def event_topic(prefix: str, site: str, kind: str, instrument: str) -> str:
    """``{prefix}/{site}/{kind}/{instrument}``; ``-`` for no instrument, wildcards made safe."""
    kind = kind.translate(_TOPIC_UNSAFE) or "-"
    instrument = instrument.translate(_TOPIC_UNSAFE) or "-"
    return f"{prefix}/{site}/{kind}/{instrument}"


class NullBus:
    """The bus when ``[mqtt]`` is absent: ``publish`` only counts the events it swallows."""

    connected = False
    dropped = 0

    def __init__(self) -> None:
        self.published = 0

    def publish(self, kind: str, instrument: str, payload: Mapping[str, object]) -> None:
        self.published += 1


class MqttBus:
    """Publishes events to an MQTT broker from a bounded queue, reconnecting as needed.

    Events tell, the database is the truth: ``publish`` never blocks and never raises; it puts
    a JSON event on a bounded in-memory queue, dropping the oldest when full, and may be called
    from the event loop or from any thread (the group-commit writer hands its events over from
    its own). ``run`` is the supervisor: it drains the queue with QoS 1 (up to ``_WINDOW`` in
    flight) and reconnects with capped, jittered exponential back-off. Delivery is at least once:
    events in flight when a connection breaks go back to the queue and are sent again, so a
    subscriber may see one twice (``seq`` tells duplicates apart). Events may carry patient data,
    so nothing here logs their contents; only counts and broker state.

    Counters (read them from anywhere, e.g. a status page): ``published`` events acknowledged by
    the broker, ``dropped`` events lost to the queue bound, ``rejected`` events that could not be
    serialised, ``failures`` sessions that ended in an error (a refused connection or a lost one),
    ``queued`` events waiting now; ``connected`` is the broker state and ``last_error`` says why
    the last session failed (exception type and broker code, never event contents).
    """

    def __init__(
        self,
        config: MqttConfig,
        site: str,
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        if not 0 < retry_initial_s <= retry_max_s:
            raise ValueError("need 0 < retry_initial_s <= retry_max_s")
        url = urlsplit(config.url)
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or 1883
        self._username = config.username or None
        self._password = config.password or None
        self._prefix = config.topic_prefix
        self._site = site
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._queue: deque[_Item] = deque(maxlen=config.queue_size)
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self.connected = False
        self.published = 0
        self.dropped = 0
        self.rejected = 0
        self.failures = 0
        self.last_error = ""

    @property
    def queued(self) -> int:
        return len(self._queue)

    def publish(self, kind: str, instrument: str, payload: Mapping[str, object]) -> None:
        """Queue one event as JSON; O(1), never blocks, never raises, safe from any thread."""
        try:
            instrument = instrument or "-"
            body = scrub_event(payload)  # texts (deviation summaries, details) may hold an ID
            body["kind"] = kind
            body["site"] = self._site
            body["instrument"] = instrument
            body["at"] = datetime.now(UTC).isoformat()
            body["seq"] = next(self._seq)
            data = json.dumps(body, default=str, ensure_ascii=False, separators=(",", ":"))
            item = (event_topic(self._prefix, self._site, kind, instrument), data.encode())
        except Exception as exc:  # a caller's bug must not break the pipeline
            self._reject(exc)
            return
        with self._lock:
            was_empty = not self._queue
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1  # the deque's bound drops the oldest on append
            self._queue.append(item)
        if was_empty:
            self._wake()

    def _reject(self, exc: Exception) -> None:
        with self._lock:
            self.rejected += 1
            count = self.rejected
        if count == 1 or count % 1000 == 0:
            log.error("event not serialisable (%s); %d rejected so far", type(exc).__name__, count)

    def _wake(self) -> None:
        loop, wakeup = self._loop, self._wakeup
        if loop is None or wakeup is None:
            return  # run() is not running: the queue keeps the events until it does
        with contextlib.suppress(RuntimeError):  # the loop closed: the events stay queued
            loop.call_soon_threadsafe(wakeup.set)

    def _requeue(self, items: list[_Item]) -> None:
        """Put unacknowledged events back at the front; if there is no room they are the oldest."""
        with self._lock:
            room = (self._queue.maxlen or 0) - len(self._queue)
            lost = max(0, len(items) - room)
            self.dropped += lost
            self._queue.extendleft(reversed(items[lost:]))

    async def run(self) -> None:
        """Connect, drain the queue, reconnect with capped jittered back-off; ends on cancel."""
        self._wakeup = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        delay = self._retry_initial_s
        try:
            while True:
                try:
                    await self._session()
                except Exception as exc:
                    self.last_error = _describe(exc)
                was_connected, self.connected = self.connected, False
                self.failures += 1
                if was_connected:
                    delay = self._retry_initial_s
                wait = delay * random.uniform(0.5, 1.0)
                log.warning(
                    "MQTT broker %s:%d %s (%s); retrying in %.1f s; %d events queued, %d dropped",
                    self._host,
                    self._port,
                    "connection lost" if was_connected else "unreachable",
                    self.last_error,
                    wait,
                    self.queued,
                    self.dropped,
                )
                await asyncio.sleep(wait)
                delay = min(delay * 2, self._retry_max_s)
        finally:
            self.connected = False
            self._loop = None
            self._wakeup = None

    async def _session(self) -> None:
        """One connection: drain until the broker goes away (raises) or we are cancelled."""
        client = aiomqtt.Client(
            self._host,
            self._port,
            username=self._username,
            password=self._password,
            identifier=f"trygg-{self._site}-{secrets.token_hex(4)}",
            clean_session=True,
            keepalive=_KEEPALIVE_S,
            timeout=_CONNECT_TIMEOUT_S,
            max_inflight_messages=_WINDOW,
            # send each event now: Nagle would hold a lone small PUBLISH until an ACK comes back
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        client.pending_calls_threshold = _WINDOW + 10
        async with _connection(client):
            self.connected = True
            log.info(
                "MQTT connected to %s:%d; %d events queued, %d dropped so far",
                self._host,
                self._port,
                self.queued,
                self.dropped,
            )
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(_watch(client))
                tasks.create_task(self._drain(client))

    async def _drain(self, client: aiomqtt.Client) -> None:
        """Keep up to ``_WINDOW`` events in flight; on any failure put the unacknowledged back."""
        inflight: dict[int, _Item] = {}  # insertion order is queue order
        slots = asyncio.Semaphore(_WINDOW)

        async def send(key: int, topic: str, data: bytes) -> None:
            try:
                await client.publish(topic, data, qos=1)
                del inflight[key]
                self.published += 1
            finally:
                slots.release()

        try:
            async with asyncio.TaskGroup() as tasks:
                for key in itertools.count():
                    await slots.acquire()
                    item = await self._next_event()
                    inflight[key] = item
                    tasks.create_task(send(key, *item))
        finally:
            if inflight:
                self._requeue(list(inflight.values()))

    async def _next_event(self) -> _Item:
        wakeup = self._wakeup
        assert wakeup is not None, "only called from run()"
        while True:
            with self._lock:
                if self._queue:
                    return self._queue.popleft()
                wakeup.clear()  # under the lock: a publish after this sees an empty queue, wakes us
            await wakeup.wait()


@contextlib.asynccontextmanager
async def _connection(client: aiomqtt.Client) -> AsyncIterator[None]:
    """``async with client``, but a connection attempt that fails or is cancelled is closed."""
    try:
        await client.__aenter__()
    except BaseException:
        # aiomqtt 2.x leaves the socket open (its reader still registered) when the wait for
        # CONNACK times out or is cancelled; close it through paho so nothing leaks.
        with contextlib.suppress(Exception):
            client._client._sock_close()
        raise
    try:
        yield
    finally:
        await client.__aexit__(None, None, None)


async def _watch(client: aiomqtt.Client) -> None:
    """Raise ``MqttError`` as soon as the connection drops, even while there is nothing to send.

    We subscribe to nothing, so the message iterator only ever ends by disconnection.
    """
    async for _ in client.messages:
        pass
    raise aiomqtt.MqttError("message iteration ended")


def _describe(exc: BaseException) -> str:
    """The exception's type and, for broker and socket errors, its code; never any payload."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = type(exc).__name__
    if isinstance(exc, aiomqtt.MqttError | OSError):
        text = f"{text}: {exc}"
        cause = exc.__cause__
        if isinstance(cause, aiomqtt.MqttError | OSError):
            text = f"{text} ({type(cause).__name__}: {cause})"
    return text
