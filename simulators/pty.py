"""Pseudo-terminal pairs: a simulated instrument on the master side, the gateway on the serial side.

The gateway opens the slave path (``/dev/pts/N``) through its ordinary ``serial://`` transport,
exactly as it would open ``/dev/ttyUSB0``; the simulator reads and writes the master through
``PtyMasterStream``, a ByteStream. POSIX only (Linux, macOS).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os

from drivers.errors import TransportError
from drivers.transports.base import DEFAULT_READ_SIZE, check_read_size


class PtyPair:
    """One pty pair. Keeps its own slave descriptor open so the master never sees a hang-up
    while the gateway closes and reopens the port (a reconnect)."""

    def __init__(self) -> None:
        if not hasattr(os, "openpty"):
            raise TransportError("pseudo-terminals need a POSIX system (Linux, macOS)")
        import tty  # POSIX only: imported here so Windows can still load this module

        self.master_fd, self._slave_fd = os.openpty()
        # raw: no echo, no CR/LF translation, every byte passes as is
        tty.setraw(self._slave_fd)
        self.slave_path = os.ttyname(self._slave_fd)
        self._closed = False

    def url(self, baudrate: int = 9600) -> str:
        """The gateway's transport URL for the slave side."""
        return f"serial://{self.slave_path}?baudrate={baudrate}"

    def master_stream(self) -> PtyMasterStream:
        """A ByteStream over the master side (one at a time)."""
        return PtyMasterStream(self.master_fd, self.slave_path)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for fd in (self.master_fd, self._slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PtyMasterStream:
    """A ByteStream over a pty master descriptor; closing it does not close the descriptor
    (the PtyPair owns it), so a simulator can "unplug" and plug in again."""

    def __init__(self, fd: int, slave_path: str) -> None:
        self._fd = fd
        self._peer = slave_path
        self._closed = False
        os.set_blocking(fd, False)

    @property
    def peer(self) -> str:
        return self._peer

    async def _wait(self, writable: bool) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        if writable:
            loop.add_writer(self._fd, wake)
        else:
            loop.add_reader(self._fd, wake)
        try:
            await ready
        finally:
            if writable:
                loop.remove_writer(self._fd)
            else:
                loop.remove_reader(self._fd)

    async def read(self, max_bytes: int = DEFAULT_READ_SIZE) -> bytes:
        check_read_size(max_bytes)
        while True:
            if self._closed:
                raise TransportError(f"pty master ({self._peer}): read on a closed stream")
            try:
                return os.read(self._fd, max_bytes)
            except BlockingIOError:
                await self._wait(writable=False)
            except OSError as exc:
                if exc.errno == errno.EIO:  # Linux: the pair was closed under us
                    return b""
                raise TransportError(f"pty master ({self._peer}): read failed: {exc}") from exc

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._closed:
                raise TransportError(f"pty master ({self._peer}): write on a closed stream")
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                await self._wait(writable=True)
                continue
            except OSError as exc:
                raise TransportError(f"pty master ({self._peer}): write failed: {exc}") from exc
            view = view[written:]

    async def aclose(self) -> None:
        self._closed = True
