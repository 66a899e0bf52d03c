"""The soak's LIS in its own process: ``python -m bench.soak_lis --port P --record PATH``.

It runs the LIS simulator (validate=fast, every valid message answered AA) and records every
message it receives, before it ACKs it, one JSON line each. It prints ``READY`` once it
listens; the soak stops it with SIGKILL (a LIS that crashes or is switched off), so a record
file may end in a torn line: the soak gives each LIS run a file of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from drivers.errors import TransportError
from simulators.lis import LisSimOptions, LisSimulator


async def serve(port: int, record: Path) -> None:
    options = LisSimOptions(host="127.0.0.1", port=port, record=record, validate="fast", seed=1)
    # the port may still be held a moment by the previous run's connections: retry briefly
    for _ in range(100):
        try:
            async with LisSimulator(options) as lis:
                sys.stdout.write("READY\n")
                sys.stdout.flush()
                await lis.serve_forever()
                return
        except TransportError:
            await asyncio.sleep(0.1)
    raise SystemExit(f"soak LIS: cannot listen on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_lis")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.record))


if __name__ == "__main__":
    main()
