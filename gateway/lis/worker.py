"""The LIS forwarder in its own process, so it gets a CPU core of its own (``[lis] worker``).

One Python process shares one core between the analysers' ingest and the forwarder; under a
flood the forwarder got a small share of it. With ``worker = "process"`` the gateway starts
``python -m gateway.lis.worker`` as a child. The child reads the store on its own connection,
builds the ORU^R01 messages and talks to the LIS; its few writes (enqueue, hold, mark sent,
settle) go to the parent's group-commit writer, so SQLite keeps one writer and nobody waits on
its lock. Parent and child speak a closed protocol on the child's stdin and stdout
(``gateway.lis.frames``): the parent says ``Hello`` (version, store, ``[lis]``), the child
answers ``Ready`` (its version), then the child sends store commands, each naming one outbox
function, and its status; the parent answers each command with ``Done`` or ``Failed`` and
sends ``Wake`` when results were queued. No callable crosses the pipe: the parent runs a
command through a table (command type -> handler calling one named outbox function). A frame
that is not ours, out of place, or of another version is refused (logged) and the child
restarted.

When the parent stops, or is killed, the child's stdin closes: the child fails its pending
writes, stops and exits, so a forwarder never outlives its gateway. The outbox guards (a result
is packed under one control ID only; settling is idempotent) make a short overlap of an old and
a new child harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import IO, Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import Engine

from gateway.config import Config, LisConfig
from gateway.errors import StoreError
from gateway.lis import outbox
from gateway.lis.forwarder import Forwarder
from gateway.lis.frames import (
    PROTOCOL_VERSION,
    TO_CHILD,
    TO_PARENT,
    Done,
    Enqueue,
    Failed,
    Hello,
    HoldUnbuildable,
    MarkSent,
    Ready,
    Settle,
    Status,
    StoreCommand,
    ToChild,
    ToParent,
    UnknownFrame,
    Wake,
    encode_frame,
    read_frame,
)
from gateway.lis.outbox import Carried, PendingMessage, lean
from gateway.store.engine import make_engine
from gateway.store.writer import GroupCommitWriter, Tx

T = TypeVar("T")
log = logging.getLogger(__name__)

#: the child reports its status at most this often, and only when it changed
STATUS_EVERY_S = 0.1
#: wake-ups to the child are at most this often (the packer polls besides)
WAKE_EVERY_S = 0.005
#: how long a stopping child may take before the parent kills it
STOP_GRACE_S = 10.0
#: the child's exit code when it refused the parent's frames
EXIT_REFUSED = 2


# -- the child ---------------------------------------------------------------------------------

# The forwarder hands its writer ``functools.partial(outbox function, **arguments)`` jobs (the
# same jobs run in the gateway's own writer with ``worker = "inline"``). In the child each job
# becomes the command frame of its outbox function; a job of any other function is a bug here.


def _enqueue(number: int, *, built: Sequence[tuple[str, str, Sequence[Carried]]]) -> Enqueue:
    return Enqueue(number, tuple((c, m, tuple(lean(batch))) for c, m, batch in built))


def _hold_unbuildable(
    number: int, *, batch: Sequence[Carried], error: str, field: str = ""
) -> HoldUnbuildable:
    return HoldUnbuildable(number, tuple(lean(batch)), error, field)


def _mark_sent(number: int, *, pending: PendingMessage) -> MarkSent:
    return MarkSent(number, pending._replace(message=""))  # the parent needs the ids only


def _settle(number: int, *, pending: PendingMessage, code: str, text: str) -> Settle:
    return Settle(number, pending._replace(message=""), code, text)


_COMMAND_FOR: dict[Callable[..., Any], Callable[..., StoreCommand]] = {
    outbox.enqueue: _enqueue,
    outbox.hold_unbuildable: _hold_unbuildable,
    outbox.mark_sent: _mark_sent,
    outbox.settle: _settle,
}


def command_for(job: Callable[[Tx], Any], number: int) -> StoreCommand:
    """The command frame for one of the forwarder's store jobs; ``TypeError`` for any other."""
    if isinstance(job, functools.partial) and not job.args:
        make = _COMMAND_FOR.get(job.func)
        if make is not None:
            return make(number, **job.keywords)
    name = getattr(getattr(job, "func", job), "__qualname__", type(job).__name__)
    raise TypeError(f"{name} is not an outbox store job the LIS worker may send")


class RemoteWriter:
    """The child's stand-in for ``GroupCommitWriter``: its jobs run in the parent's writer."""

    def __init__(self, engine: Engine, send: Callable[[ToParent], None]) -> None:
        self.engine = engine  # reads stay local (WAL readers never wait for the writer)
        self._send = send
        self._pending: dict[int, Future[Any]] = {}
        self._next = 0

    def submit(self, job: Callable[[Tx], T], *, urgent: bool = False) -> Future[T]:
        self._next += 1
        command = command_for(job, self._next)
        future: Future[T] = Future()
        self._pending[self._next] = future
        self._send(command)
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


def _status(forwarder: Forwarder) -> Status:
    return Status(
        connected=forwarder.connected,
        last_error=forwarder.last_error,
        sent=forwarder.sent,
        acknowledged=forwarder.acknowledged,
        rejected=forwarder.rejected,
        retries=forwarder.retries,
    )


def _read_parent(
    stdin: IO[bytes],
    loop: asyncio.AbstractEventLoop,
    handle: Callable[[object | UnknownFrame | None], None],
) -> None:
    """Blocking reads on a thread (portable: Windows cannot select on a pipe)."""
    while True:
        item: object | UnknownFrame | None
        try:
            item = read_frame(stdin, TO_CHILD)
        except UnknownFrame as exc:
            item = exc
        except (OSError, ValueError):
            item = None
        loop.call_soon_threadsafe(handle, item)
        if item is None or isinstance(item, UnknownFrame):
            return


async def serve(store_url: str, lis: LisConfig, stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """Run the forwarder until the parent closes stdin; the exit code (0, or EXIT_REFUSED
    after a frame from the parent that is not ours)."""
    lock = threading.Lock()

    def send(frame: ToParent) -> None:
        data = encode_frame(frame)
        with lock, contextlib.suppress(OSError, ValueError):  # the parent is gone
            stdout.write(data)
            stdout.flush()

    send(Ready(PROTOCOL_VERSION))
    engine = make_engine(store_url)
    writer = RemoteWriter(engine, send)
    forwarder = Forwarder(writer, lis)
    closed = asyncio.Event()
    code = 0

    def handle(item: object | UnknownFrame | None) -> None:
        nonlocal code
        if isinstance(item, Wake):
            forwarder.wake()
        elif isinstance(item, Done):
            writer.resolve(item.number, True, item.value)
        elif isinstance(item, Failed):
            writer.resolve(item.number, False, item.error)
        elif item is None:
            writer.fail_all("the gateway stopped")
            closed.set()
        else:  # not ours, or a second Hello: stop; the parent starts a new worker
            why = str(item) if isinstance(item, UnknownFrame) else type(item).__name__
            log.error("refused a frame from the gateway (%s): stopping", why)
            code = EXIT_REFUSED
            writer.fail_all("the worker refused a frame from the gateway")
            closed.set()

    loop = asyncio.get_running_loop()
    threading.Thread(target=_read_parent, args=(stdin, loop, handle), daemon=True).start()
    try:
        async with asyncio.TaskGroup() as group:
            running = group.create_task(forwarder.run(), name="lis-forwarder")

            async def report() -> None:
                last: Status | None = None
                while True:
                    now = _status(forwarder)
                    if now != last:
                        send(now)
                        last = now
                    await asyncio.sleep(STATUS_EVERY_S)

            reporting = group.create_task(report(), name="status")
            await closed.wait()
            running.cancel()
            reporting.cancel()
    finally:
        engine.dispose()
    return code


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
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s[lis-worker]: %(message)s")
    stdin = sys.stdin.buffer
    try:
        hello = read_frame(stdin, frozenset({Hello}))
    except UnknownFrame as exc:
        log.error("refused the gateway's first frame (%s)", exc)
        return EXIT_REFUSED
    if hello is None:
        return 0  # the parent went away before it said anything
    assert isinstance(hello, Hello)
    if hello.version != PROTOCOL_VERSION:
        log.error(
            "the gateway speaks worker protocol %s, this worker %s: refused",
            hello.version,
            PROTOCOL_VERSION,
        )
        return EXIT_REFUSED
    logging.getLogger().setLevel(hello.log_level)
    try:
        lis = LisConfig.model_validate_json(hello.lis_config)
    except ValidationError as exc:
        log.error("the gateway's [lis] section does not validate here: %s", exc)
        return EXIT_REFUSED
    return asyncio.run(serve(hello.store_url, lis, stdin, frames))


# -- the parent's handle -----------------------------------------------------------------------

# What the parent does for each store command: one named outbox function, nothing else.


def _run_enqueue(tx: Tx, command: Enqueue) -> int:
    return outbox.enqueue(tx, command.built)


def _run_hold_unbuildable(tx: Tx, command: HoldUnbuildable) -> None:
    outbox.hold_unbuildable(tx, command.batch, command.error, command.field)


def _run_mark_sent(tx: Tx, command: MarkSent) -> None:
    outbox.mark_sent(tx, command.pending)


def _run_settle(tx: Tx, command: Settle) -> None:
    outbox.settle(tx, command.pending, command.code, command.text)


STORE_HANDLERS: dict[type, Callable[[Tx, Any], int | None]] = {
    Enqueue: _run_enqueue,
    HoldUnbuildable: _run_hold_unbuildable,
    MarkSent: _run_mark_sent,
    Settle: _run_settle,
}


class ForwarderProcess:
    """The parent's view of the child: the same ``wake``/``run`` and counters as ``Forwarder``.

    The child's frames are read on a thread of their own and its writes go straight to the
    writer's urgent lane, answered from the writer thread: the parent's event loop, busy with
    the analysers, is never on the forwarder's path.
    """

    #: how the child is started (a test starts an impostor in its place)
    command: tuple[str, ...] = (sys.executable, "-m", "gateway.lis.worker")

    def __init__(
        self, config: Config, writer: GroupCommitWriter, *, restart_s: float = 1.0
    ) -> None:
        assert config.lis is not None, "a forwarder needs a [lis] section"
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
        self._send(Wake())

    def _send(self, frame: ToChild) -> None:
        """Queue a frame for the child; never blocks (the writer thread calls it, and must
        not wait on a child that stopped reading)."""
        outgoing = self._outgoing
        if outgoing is not None:
            outgoing.put(encode_frame(frame))

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
            subprocess.Popen, list(self.command), stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        outgoing: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._outgoing = outgoing
        self.starts += 1
        self._base = (self.sent, self.acknowledged, self.rejected, self.retries)
        reader = threading.Thread(target=self._read_child, args=(proc, outgoing), daemon=True)
        sender = threading.Thread(target=self._write_child, args=(proc, outgoing), daemon=True)
        try:
            self._send(self._hello())
            self._send(Wake())
            sender.start()
            reader.start()
            await asyncio.to_thread(reader.join)
            return await asyncio.to_thread(proc.wait)
        finally:
            self._outgoing = None
            outgoing.put(b"")  # the sender ends after what is queued
            await asyncio.shield(asyncio.to_thread(self._stop, proc, sender))

    def _hello(self) -> Hello:
        assert self._config.lis is not None
        return Hello(
            version=PROTOCOL_VERSION,
            store_url=self._config.store.url,
            lis_config=self._config.lis.model_dump_json(),
            log_level=logging.getLogger().getEffectiveLevel(),
        )

    def _read_child(
        self, proc: subprocess.Popen[bytes], outgoing: queue.SimpleQueue[bytes]
    ) -> None:
        """Read the child's frames until it ends; a frame that is not ours, out of place or of
        another version gets the child killed (``run`` then starts a new one)."""
        assert proc.stdout is not None
        ready = False
        while True:
            try:
                frame = read_frame(proc.stdout, TO_PARENT)
            except Exception as exc:  # this child cannot be trusted any more
                why = str(exc) if isinstance(exc, UnknownFrame) else type(exc).__name__
                self._refuse(proc, f"a frame that is not ours ({why})")
                return
            if frame is None:
                return
            if not ready:
                if not isinstance(frame, Ready):
                    self._refuse(proc, f"{type(frame).__name__} before Ready")
                    return
                if frame.version != PROTOCOL_VERSION:
                    self._refuse(
                        proc,
                        f"protocol version {frame.version}, the gateway's is {PROTOCOL_VERSION}",
                    )
                    return
                ready = True
            elif not self._handle(frame, outgoing):
                self._refuse(proc, f"a {type(frame).__name__} frame out of place")
                return

    @staticmethod
    def _refuse(proc: subprocess.Popen[bytes], why: str) -> None:
        log.error("the LIS worker sent %s: stopping it (it is restarted)", why)
        with contextlib.suppress(OSError):
            proc.kill()

    def _handle(self, frame: object, outgoing: queue.SimpleQueue[bytes]) -> bool:
        """Act on one frame from a ready child; False when it has no place here."""
        handler = STORE_HANDLERS.get(type(frame))
        if handler is not None:
            assert isinstance(frame, Enqueue | HoldUnbuildable | MarkSent | Settle)
            command = frame
            future = self._writer.submit(lambda tx: handler(tx, command), urgent=True)
            # the answer goes to the child that asked (not to a successor after a restart)
            number = command.number
            future.add_done_callback(lambda f: self._answer(number, f, outgoing))
            return True
        if isinstance(frame, Status):
            self.connected = frame.connected
            self.last_error = frame.last_error
            base = self._base
            self.sent = base[0] + frame.sent
            self.acknowledged = base[1] + frame.acknowledged
            self.rejected = base[2] + frame.rejected
            self.retries = base[3] + frame.retries
            return True
        return False

    @staticmethod
    def _answer(number: int, future: Future[Any], outgoing: queue.SimpleQueue[bytes]) -> None:
        error = future.exception()
        answer = Done(number, future.result()) if error is None else Failed(number, str(error))
        outgoing.put(encode_frame(answer))

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
