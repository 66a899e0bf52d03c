"""The soak's faults: a seeded plan of when to inject what, and idle sockets on instrument ports.

Four kinds of fault, each at least once in every run (the first four are the kinds in a
seeded order, the rest drawn at random), at seeded random moments in the sending phase:

* ``idle``: open plain TCP connections to a few instruments' ports and send nothing (a
  cable pulled, an analyser rebooted, a port scan), held for a while, then closed by us;
* ``lis``: the LIS process is killed and started again after a while (a LIS outage);
* ``kill``: the gateway is killed with SIGKILL and started again on the same store; right
  after the restart some instruments may get an idle socket that connects before their
  analyser does (``race``: a silent peer wins the race for the port);
* ``second``: a second ``trygg run`` on the same config and store, which must refuse to
  start (non-zero exit within seconds) while the first keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field

KINDS = ("idle", "lis", "kill", "second")


@dataclass(frozen=True, slots=True)
class Fault:
    at_s: float  # seconds into the sending phase
    kind: str
    #: idle: instrument indexes; kill: indexes that get an idle socket racing the restart
    targets: tuple[int, ...] = ()
    hold_s: float = 0.0  # idle: how long the sockets stay open
    down_s: float = 0.0  # lis: how long the LIS stays down; kill: wait before the restart


def plan(seed: int, *, duration_s: float, analysers: int) -> list[Fault]:
    """The faults of one run, in time order: about one every 20 s, at least one per kind."""
    rng = random.Random(seed)
    count = max(len(KINDS), round(duration_s / 20))
    kinds = list(KINDS)
    rng.shuffle(kinds)
    kinds += [rng.choice(KINDS) for _ in range(count - len(KINDS))]
    # moments in the sending phase, leaving its first and last few seconds undisturbed
    start, end = min(5.0, duration_s * 0.1), duration_s * 0.85
    moments = sorted(rng.uniform(start, end) for _ in range(count))
    hold_base = min(60.0, duration_s / 4)
    most = max(1, min(5, analysers // 10))  # instruments one idle fault hits
    faults = []
    for number, (at_s, kind) in enumerate(zip(moments, kinds, strict=True)):
        targets: tuple[int, ...] = ()
        hold = down = 0.0
        if kind == "idle":
            targets = tuple(rng.sample(range(analysers), rng.randint(1, most)))
            hold = hold_base * rng.uniform(0.5, 1.5)
        elif kind == "lis":
            down = rng.uniform(2.0, min(15.0, max(3.0, duration_s / 8)))
        elif kind == "kill":
            down = rng.uniform(0.0, 2.0)
            # the first kill of a run always gets the race, later ones every other time
            if number == kinds.index("kill") or rng.random() < 0.5:
                targets = tuple(rng.sample(range(analysers), rng.randint(1, most)))
                hold = hold_base * rng.uniform(0.5, 1.5)
        faults.append(Fault(at_s, kind, targets, hold, down))
    return faults


@dataclass
class IdleSocket:
    """One silent TCP connection to an instrument's port, from open until it closed."""

    instrument: int
    port: int
    opened_at: float = 0.0  # time.time()
    connected: bool = False
    #: when the gateway closed it (EOF or reset seen), None while open or closed by us
    closed_by_gateway_at: float | None = None
    closed_at: float | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def hold(self, seconds: float, *, race_s: float = 0.0) -> None:
        """Connect (retrying for ``race_s`` while the port is not yet listening), send
        nothing, and wait ``seconds`` or until the gateway closes the connection."""
        deadline = time.monotonic() + race_s
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    self.closed_at = time.time()
                    return
                await asyncio.sleep(0.01)
        self.opened_at, self.connected = time.time(), True
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    with contextlib.suppress(OSError):  # a reset: closed too
                        await reader.read()  # returns at EOF: the gateway closed it
                    self.closed_by_gateway_at = time.time()
        finally:
            self.closed_at = time.time()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def start(self, seconds: float, *, race_s: float = 0.0) -> None:
        self.task = asyncio.create_task(self.hold(seconds, race_s=race_s), name="idle-socket")

    async def close(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
