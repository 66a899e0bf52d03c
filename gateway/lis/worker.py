"""The LIS forwarder in its own process, so it gets a CPU core of its own (``[lis] worker``).

One Python process shares one core between the analysers' ingest and the forwarder; under a
flood the forwarder got a small share of it. With ``worker = "process"`` the gateway starts
``python -m gateway.lis.worker`` as a child. The child reads the store on its own connection,
builds the ORU^R01 messages and talks to the LIS; its few writes (enqueue, mark sent, settle)
go to the parent's group-commit writer, so SQLite keeps one writer and nobody waits on its
lock. Parent and child exchange pickled frames (4-byte big-endian length, then the pickle) on
the child's stdin and stdout:

* parent -> child: ``("config", config, log level)`` first; then ``("wake",)`` when results
  were queued, and ``("done", n, value)`` / ``("failed", n, error_text)`` answering write ``n``;
* child -> parent: ``("write", n, job)`` (a picklable ``Tx -> value`` function, run in the
  parent's writer's urgent lane) and ``("status", {...})`` for the dashboard and live view.

When the parent stops, or is killed, the child's stdin closes: the child fails its pending
writes, stops and exits, so a forwarder never outlives its gateway. The outbox guards (a result
is packed under one control ID only; settling is idempotent) make a short overlap of an old and
a new child harmless. The pipe carries pickles only between a parent and the child it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import IO, Any, TypeVar

from sqlalchemy import Engine

from gateway.config import Config
from gateway.errors import StoreError
from gateway.lis.forwarder import Forwarder
from gateway.store.engine import make_engine
from gateway.store.writer import GroupCommitWriter, Tx

T = TypeVar("T")
log = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
#: our frames are small (a job, a status); a longer one means the stream is not ours
MAX_FRAME = 1 << 24
#: the child reports its status at most this often, and only when it changed
STATUS_EVERY_S = 0.1
#: wake-ups to the child are at most this often (the packer polls besides)
WAKE_EVERY_S = 0.005
#: how long a stopping child may take before the parent kills it
STOP_GRACE_S = 10.0


def encode_frame(item: object) -> bytes:
    payload = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_frame(stream: IO[bytes]) -> Any:
    """The next frame from a blocking stream, or None at end of stream."""
    header = _read_exactly(stream, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"a frame of {size} bytes is not one of ours")
    payload = _read_exactly(stream, size)
    return None if payload is None else pickle.loads(payload)


# -- the child ---------------------------------------------------------------------------------


class RemoteWriter:
    """The child's stand-in for ``GroupCommitWriter``: jobs run in the parent's writer."""

    def __init__(self, engine: Engine, send: Callable[[object], None]) -> None:
        self.engine = engine  # reads stay local (WAL readers never wait for the writer)
        self._send = send
        self._pending: dict[int, Future[Any]] = {}
        self._next = 0

    def submit(self, job: Callable[[Tx], T], *, urgent: bool = False) -> Future[T]:
        self._next += 1
        future: Future[T] = Future()
        self._pending[self._next] = future
        self._send(("write", self._next, job))
        return future

    async def write(self, job: Callable[[Tx], T], *, urgent: bool = False) -> T:
        return await asyncio.wrap_future(self.submit(job, urgent=urgent))

    def resolve(self, number: int, ok: bool, value: Any) -> None:
        future = self._pending.pop(number, None)
        if future is None or future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(StoreError(f"the gateway's writer refused the job: {value}"))

    def fail_all(self, why: str) -> None:
        for number in list(self._pending):
            self.resolve(number, False, why)


def _status(forwarder: Forwarder) -> dict[str, Any]:
    return {
        "connected": forwarder.connected,
        "last_error": forwarder.last_error,
        "sent": forwarder.sent,
        "acknowledged": forwarder.acknowledged,
        "rejected": forwarder.rejected,
        "retries": forwarder.retries,
    }


def _read_parent(
    stdin: IO[bytes], loop: asyncio.AbstractEventLoop, handle: Callable[[Any], None]
) -> None:
    """Blocking reads on a thread (portable: Windows cannot select on a pipe)."""
    while True:
        try:
            item = read_frame(stdin)
        except (OSError, ValueError, pickle.UnpicklingError, EOFError):
            item = None
        loop.call_soon_threadsafe(handle, item)
        if item is None:
            return


async def serve(config: Config, stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """Run the forwarder until the parent closes stdin."""
    assert config.lis is not None
    lock = threading.Lock()

    def send(item: object) -> None:
        frame = encode_frame(item)
        with lock, contextlib.suppress(OSError, ValueError):  # the parent is gone
            stdout.write(frame)
            stdout.flush()

    engine = make_engine(config.store.url)
    writer = RemoteWriter(engine, send)
    forwarder = Forwarder(writer, config.lis)
    closed = asyncio.Event()

    def handle(item: Any) -> None:
        if item is None:
            writer.fail_all("the gateway stopped")
            closed.set()
        elif item[0] == "wake":
            forwarder.wake()
        elif item[0] in ("done", "failed"):
            writer.resolve(item[1], item[0] == "done", item[2])

    loop = asyncio.get_running_loop()
    threading.Thread(target=_read_parent, args=(stdin, loop, handle), daemon=True).start()
    try:
        async with asyncio.TaskGroup() as group:
            running = group.create_task(forwarder.run(), name="lis-forwarder")

            async def report() -> None:
                last: dict[str, Any] = {}
                while True:
                    now = _status(forwarder)
                    if now != last:
                        send(("status", now))
                        last = now
                    await asyncio.sleep(STATUS_EVERY_S)

            reporting = group.create_task(report(), name="status")
            await closed.wait()
            running.cancel()
            reporting.cancel()
    finally:
        engine.dispose()


def main() -> int:
    # Ctrl-C reaches the whole process group; the gateway decides when we stop (it closes our
    # stdin), so that we finish what is in flight instead of dying mid-write
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Frames get a private copy of stdout; stdout itself then points at stderr, so a stray
    # print() from any library can never corrupt the frame stream.
    frames = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    try:
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # no usable stderr (a Windows service)
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), sys.stdout.fileno())
    stdin = sys.stdin.buffer
    first = read_frame(stdin)
    if not (isinstance(first, tuple) and len(first) == 3 and isinstance(first[1], Config)):
        return 0  # the parent went away before it said anything
    _, config, level = first
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s[lis-worker]: %(message)s"
    )
    if config.lis is None:
        log.error("no [lis] section: nothing to forward")
        return 2
    asyncio.run(serve(config, stdin, frames))
    return 0


# -- the parent's handle -----------------------------------------------------------------------


class ForwarderProcess:
    """The parent's view of the child: the same ``wake``/``run`` and counters as ``Forwarder``.

    The child's frames are read on a thread of their own and its writes go straight to the
    writer's urgent lane, answered from the writer thread: the parent's event loop, busy with
    the analysers, is never on the forwarder's path.
    """

    def __init__(
        self, config: Config, writer: GroupCommitWriter, *, restart_s: float = 1.0
    ) -> None:
        self._config = config
        self._writer = writer
        self._restart_s = restart_s
        self._outgoing: queue.SimpleQueue[bytes] | None = None
        self.connected = False
        self.last_error = ""
        self.sent = 0
        self.acknowledged = 0
        self.rejected = 0
        self.retries = 0
        self.starts = 0
        self._base = (0, 0, 0, 0)
        self._last_wake = 0.0
        self._wake_due = False

    def wake(self) -> None:
        """Tell the child results were queued (at most one wake-up per WAKE_EVERY_S: the
        child looks for everything queued when it wakes)."""
        if self._wake_due:
            return  # one is on its way
        wait = self._last_wake + WAKE_EVERY_S - time.monotonic()
        if wait <= 0:
            self._send_wake()
        else:  # a trailing wake-up, so the last results never wait for the child's poll
            self._wake_due = True
            asyncio.get_running_loop().call_later(wait, self._send_wake)

    def _send_wake(self) -> None:
        self._wake_due = False
        self._last_wake = time.monotonic()
        self._send(("wake",))

    def _send(self, item: object) -> None:
        """Queue a frame for the child; never blocks (the writer thread calls it, and must
        not wait on a child that stopped reading)."""
        outgoing = self._outgoing
        if outgoing is not None:
            outgoing.put(encode_frame(item))

    @staticmethod
    def _write_child(proc: subprocess.Popen[bytes], outgoing: queue.SimpleQueue[bytes]) -> None:
        """The only writer of the child's stdin; ends at the b"" that ``_stop`` queues."""
        assert proc.stdin is not None
        while frame := outgoing.get():
            try:
                proc.stdin.write(frame)
                proc.stdin.flush()
            except (OSError, ValueError):  # the child is gone: drop what is left
                return

    async def run(self) -> None:
        """Keep one child running until cancelled; restart it if it dies."""
        while True:
            code = await self._run_child()
            log.error("the LIS worker process exited (code %s); restarting it", code)
            self.connected = False
            self.last_error = f"LIS worker process exited with code {code}"
            await asyncio.sleep(self._restart_s)

    async def _run_child(self) -> int | None:
        proc = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "gateway.lis.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        outgoing: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._outgoing = outgoing
        self.starts += 1
        self._base = (self.sent, self.acknowledged, self.rejected, self.retries)
        reader = threading.Thread(target=self._read_child, args=(proc, outgoing), daemon=True)
        sender = threading.Thread(target=self._write_child, args=(proc, outgoing), daemon=True)
        try:
            self._send(("config", self._config, logging.getLogger().getEffectiveLevel()))
            self._send(("wake",))
            sender.start()
            reader.start()
            await asyncio.to_thread(reader.join)
            return await asyncio.to_thread(proc.wait)
        finally:
            self._outgoing = None
            outgoing.put(b"")  # the sender ends after what is queued
            await asyncio.shield(asyncio.to_thread(self._stop, proc, sender))

    def _read_child(
        self, proc: subprocess.Popen[bytes], outgoing: queue.SimpleQueue[bytes]
    ) -> None:
        assert proc.stdout is not None
        while True:
            try:
                item = read_frame(proc.stdout)
            except Exception as exc:  # a garbled frame: this child cannot be trusted any more
                log.error("the LIS worker sent a frame that is not ours (%s)", type(exc).__name__)
                with contextlib.suppress(OSError):
                    proc.kill()
                return
            if item is None:
                return
            self._handle(item, outgoing)

    def _handle(self, item: Any, outgoing: queue.SimpleQueue[bytes]) -> None:
        if item[0] == "write":
            number, job = item[1], item[2]
            future = self._writer.submit(job, urgent=True)
            # the answer goes to the child that asked (not to a successor after a restart)
            future.add_done_callback(lambda f: self._answer(number, f, outgoing))
        elif item[0] == "status":
            status = item[1]
            self.connected = bool(status["connected"])
            self.last_error = str(status["last_error"])
            base = self._base
            self.sent = base[0] + int(status["sent"])
            self.acknowledged = base[1] + int(status["acknowledged"])
            self.rejected = base[2] + int(status["rejected"])
            self.retries = base[3] + int(status["retries"])

    @staticmethod
    def _answer(number: int, future: Future[Any], outgoing: queue.SimpleQueue[bytes]) -> None:
        error = future.exception()
        if error is None:
            outgoing.put(encode_frame(("done", number, future.result())))
        else:
            outgoing.put(encode_frame(("failed", number, str(error))))

    def _stop(self, proc: subprocess.Popen[bytes], sender: threading.Thread) -> None:
        """Close stdin (the child's signal to stop), wait, and kill it if it hangs."""
        sender.join(timeout=STOP_GRACE_S)
        if sender.is_alive():  # the child stopped reading: do not wait for it
            proc.kill()
            sender.join()
        with contextlib.suppress(OSError, ValueError):
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            log.warning("the LIS worker did not stop within %.0f s: killing it", STOP_GRACE_S)
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
