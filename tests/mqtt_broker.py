"""Real Mosquitto brokers for tests: the machine's broker on 1883 and private ones on free ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

from tests.ports import free_port

MOSQUITTO = shutil.which(
    "mosquitto", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
)
SYSTEM_HOST = "127.0.0.1"
SYSTEM_PORT = 1883
SYSTEM_CONFIG = "/etc/mosquitto/mosquitto.conf"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _wait_open(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open(port):
            return True
        time.sleep(0.01)
    return False


def ensure_system_broker() -> None:
    """Make sure the machine's Mosquitto answers on 127.0.0.1:1883, starting it if needed."""
    if port_open(SYSTEM_PORT):
        return
    assert MOSQUITTO is not None
    subprocess.run(
        [MOSQUITTO, "-d", "-c", SYSTEM_CONFIG], check=False, capture_output=True, timeout=10
    )
    if not _wait_open(SYSTEM_PORT, 5.0):
        raise RuntimeError(
            f"the machine's Mosquitto is not listening on {SYSTEM_HOST}:{SYSTEM_PORT} and "
            f"`{MOSQUITTO} -d -c {SYSTEM_CONFIG}` did not start it"
        )


class PrivateBroker:
    """A Mosquitto process of our own on a loopback port, to kill and restart at will."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        assert MOSQUITTO is not None
        self.port = port or free_port()
        self.directory = directory
        self.config = directory / "mosquitto.conf"
        # max_queued_messages 0: the test subscriber shares a CPU with a publisher draining
        # thousands of queued events; the default (1000) would drop QoS 1 messages meant for it.
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 0\n"
        )
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert self._process is None, "already running"
        assert MOSQUITTO is not None
        self.starts += 1
        self._log = (self.directory / f"mosquitto-{self.starts}.log").open("wb")
        self._process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)], stdout=self._log, stderr=subprocess.STDOUT
        )
        if not _wait_open(self.port, 5.0):
            self.stop()
            log = (self.directory / f"mosquitto-{self.starts}.log").read_text(errors="replace")
            raise RuntimeError(f"private mosquitto did not listen on {self.port}:\n{log}")

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, just as a crash or a pulled cable."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.send_signal(sig)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None
