"""Line-rate pacing for links that do not enforce a baud rate: pty pairs and TCP loopback.

A pty (or a socket) moves bytes as fast as the kernel can; a serial line at 9600 baud moves
960 bytes a second (8N1: a start bit, eight data bits and a stop bit per byte). Two paced
programs, each run in a child process of its own so that their timing is not disturbed by
the code under test (and ``time.sleep`` plus a short spin lands within some microseconds):

* ``instrument``: an instrument-role E1381 link (our sans-IO ``Link``) on an inherited pty
  master descriptor. It writes its bytes in small chunks, never before the line could have
  carried them, and hands the host's replies (ACKs) to the link only when they could have
  arrived. It reports when each message was acknowledged.
* ``relay``: a TCP relay for a peer library that only speaks TCP. Each direction is a line
  of its own; whatever one side writes is delivered to the other, whole, at the moment its
  last byte would have arrived (store and forward, as a frame-oriented receiver sees it).

``python -m bench.paced_pty instrument FD`` reads an ``InstrumentJob`` as JSON on stdin;
``python -m bench.paced_pty relay BAUDRATE TARGET_PORT`` prints ``PORT n``.
"""

from __future__ import annotations

import heapq
import json
import os
import select
import socket
import statistics
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field

from drivers.protocols.astm.events import (
    LinkIdle,
    MessageSent,
    ProtocolViolation,
    SendFailed,
)
from drivers.protocols.astm.frames import NAK
from drivers.protocols.astm.link import Link

#: 8N1: start bit, eight data bits, stop bit
BITS_PER_BYTE = 10
#: the instrument writes about this much line time per chunk
CHUNK_S = 0.001
#: time.sleep overshoots by tens of microseconds; the last stretch is spun instead
_SPIN_S = 0.0002

now = time.perf_counter


def byte_time(baudrate: int) -> float:
    """Seconds one byte occupies the line."""
    return BITS_PER_BYTE / baudrate


def sleep_until(deadline: float, *, precise: bool = True) -> None:
    """Sleep until ``deadline`` (a ``perf_counter`` time); ``precise`` spins the last stretch
    (to some microseconds) where lateness would count as turnaround, and costs CPU."""
    remaining = deadline - now()
    if not precise:
        if remaining > 0:
            time.sleep(remaining)
        return
    if remaining > _SPIN_S:
        time.sleep(remaining - _SPIN_S)
    while now() < deadline:
        pass


class LineClock:
    """One direction of a serial line: bytes cross it one after another at the line rate."""

    def __init__(self, baudrate: int) -> None:
        self.byte_s = byte_time(baudrate)
        self.free_at = 0.0

    def reserve(self, start: float, count: int) -> float:
        """Send ``count`` bytes no earlier than ``start``; return when the last one arrives."""
        begin = max(start, self.free_at)
        self.free_at = begin + count * self.byte_s
        return self.free_at


@dataclass(frozen=True, slots=True)
class InstrumentJob:
    """What the paced instrument sends: sessions of E1394 messages (latin-1 text)."""

    baudrate: int
    sessions: list[list[str]]


@dataclass(slots=True)
class InstrumentReport:
    """When the line was first used, when each message was acknowledged, and what crossed."""

    started: float = 0.0
    #: perf_counter time at which the ACK of each message's last frame arrived
    sent_at: list[float] = field(default_factory=list)
    #: bytes the instrument had put on the line when each message was acknowledged
    tx_bytes_at_sent: list[int] = field(default_factory=list)
    #: bytes the host had put on the line (ACKs) by then
    rx_bytes_at_sent: list[int] = field(default_factory=list)
    #: the last byte of a write (ENQ or frame) on the line -> the reply delivered (median, s)
    turnaround_s: float = 0.0
    frames_refused: int = 0
    failed: int = 0
    violations: int = 0


class _PacedInstrument:
    """Drives one instrument-role Link over a blocking pty master descriptor."""

    def __init__(self, fd: int, job: InstrumentJob) -> None:
        self._fd = fd
        self._link = Link("instrument", now=now())
        self._tx = LineClock(job.baudrate)
        self._rx = LineClock(job.baudrate)
        self._chunk = max(1, round(CHUNK_S / self._tx.byte_s))
        self._sessions = deque([m.encode("latin-1") for m in session] for session in job.sessions)
        self._tx_total = 0
        self._rx_total = 0
        self._awaiting_reply_since: float | None = None
        self._turnarounds: list[float] = []
        self.report = InstrumentReport()

    def run(self) -> InstrumentReport:
        self._start_session()
        self.report.started = now()
        finished = False
        while not finished:
            finished = self._handle_events()
            self._write(self._link.data_to_send())
            if finished:
                break
            self._wait_and_read()
        self.report.turnaround_s = statistics.median(self._turnarounds or [0.0])
        return self.report

    def _start_session(self) -> None:
        for message in self._sessions.popleft():
            self._link.send_message(message, now())

    def _handle_events(self) -> bool:
        report = self.report
        while (event := self._link.next_event()) is not None:
            if isinstance(event, MessageSent):
                report.sent_at.append(now())
                report.tx_bytes_at_sent.append(self._tx_total)
                report.rx_bytes_at_sent.append(self._rx_total)
            elif isinstance(event, SendFailed):
                report.failed += 1
            elif isinstance(event, ProtocolViolation):
                report.violations += 1
            elif isinstance(event, LinkIdle) and self._link.pending == 0:
                if not self._sessions:
                    return True
                self._start_session()  # the next session's ENQ follows this one's EOT
        return False

    def _write(self, data: bytes) -> None:
        """Put ``data`` on the line: each chunk is written once the line could have carried it."""
        if not data:
            return
        start = self._tx.reserve(now(), 0)
        for offset in range(0, len(data), self._chunk):
            piece = data[offset : offset + self._chunk]
            last = offset + self._chunk >= len(data)
            # a late chunk inside a write is caught up by the next (the schedule is absolute);
            # only the last one's lateness would delay the reply
            sleep_until(self._tx.reserve(start, len(piece)), precise=last)
            os.write(self._fd, piece)
        self._tx_total += len(data)
        self._awaiting_reply_since = self._tx.free_at

    def _wait_and_read(self) -> None:
        deadline = self._link.next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - now())
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            self._link.handle_timeout(now())
            return
        data = os.read(self._fd, 4096)
        if not data:
            raise EOFError("the host side of the pty closed")
        sleep_until(self._rx.reserve(now(), len(data)))
        delivered = now()
        if self._awaiting_reply_since is not None:
            self._turnarounds.append(delivered - self._awaiting_reply_since)
            self._awaiting_reply_since = None
        self._rx_total += len(data)
        self.report.frames_refused += data.count(NAK)
        self._link.receive_data(data, delivered)


def run_instrument(fd: int, job: InstrumentJob) -> InstrumentReport:
    """Send every session of ``job`` over the pty master ``fd``, paced at the job's baud rate."""
    os.set_blocking(fd, True)
    return _PacedInstrument(fd, job).run()


def run_relay(baudrate: int, target_port: int) -> None:
    """Relay one TCP connection to ``127.0.0.1:target_port``, each direction paced."""
    listener = socket.create_server(("127.0.0.1", 0))
    sys.stdout.write(f"PORT {listener.getsockname()[1]}\n")
    sys.stdout.flush()
    client, _ = listener.accept()
    listener.close()
    server = socket.create_connection(("127.0.0.1", target_port))
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    peer_of = {client: server, server: client}
    lines = {client: LineClock(baudrate), server: LineClock(baudrate)}
    pending: list[tuple[float, int, socket.socket, bytes]] = []  # (due, order, to, data)
    order = 0
    open_sockets = 2
    while open_sockets == 2 or pending:
        timeout = max(0.0, pending[0][0] - now()) if pending else None
        readable, _, _ = select.select(
            [client, server] if open_sockets == 2 else [], [], [], timeout
        )
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                open_sockets -= 1
                continue
            order += 1
            due = lines[sock].reserve(now(), len(data))
            heapq.heappush(pending, (due, order, peer_of[sock], data))
        while pending and pending[0][0] <= now() + _SPIN_S:
            due, _, target, data = heapq.heappop(pending)
            sleep_until(due)
            target.sendall(data)
    client.close()
    server.close()


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "instrument":
        raw = json.load(sys.stdin)
        job = InstrumentJob(baudrate=int(raw["baudrate"]), sessions=raw["sessions"])
        report = run_instrument(int(argv[1]), job)
        sys.stdout.write(json.dumps(asdict(report)) + "\n")
        return 0
    if len(argv) == 3 and argv[0] == "relay":
        run_relay(int(argv[1]), int(argv[2]))
        return 0
    sys.stderr.write(__doc__ or "")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
