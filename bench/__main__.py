"""`python -m bench NAME [--quick] [--json PATH] [--dir DIR]`; `python -m bench --list`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.report import Reporter

#: bench name -> (module, one-line description)
BENCHES: dict[str, tuple[str, str]] = {
    "ceilings": (
        "bench.ceilings",
        "SQLite commit per row, raw fsync, python-hl7 MLLP server, asyncio loopback echo",
    ),
    "e2e": ("bench.e2e", "results/s from 100 analysers through the gateway to the LIS ACK"),
    "latency": ("bench.latency", "p50/p99 analyser last byte -> LIS ACK at 300 results/s"),
    "rss": ("bench.rss", "peak RSS of the gateway process with 100 connected analysers"),
    "astm": ("bench.astm_codec", "E1394 decode and E1381 framing against peer libraries"),
    "serial": ("bench.astm_serial", "share of the line rate an ASTM serial link reaches"),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("name", nargs="?", choices=[*BENCHES, "all"], help="which benchmark")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--quick", action="store_true", help="short windows (under 60 s each)")
    parser.add_argument("--json", type=Path, help="append one JSON line per figure to this file")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="where databases and fsync files live (default: the temp dir)",
    )
    args = parser.parse_args(argv)
    if not args.list and args.name is None:
        parser.error("name a benchmark (or --list)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        for name, (_, description) in BENCHES.items():
            sys.stdout.write(f"{name:<10} {description}\n")
        return 0
    reporter = Reporter(args.json)
    names = list(BENCHES) if args.name == "all" else [args.name]
    for name in names:
        module = importlib.import_module(BENCHES[name][0])
        started = time.perf_counter()
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        reporter.say(f"{name}: {os.cpu_count()} CPUs, load average {load} (1/5/15 min) at start")
        module.run(reporter, quick=args.quick, directory=args.dir)
        reporter.say(f"{name}: done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
