"""`python -m bench NAME [--quick] [--json PATH] [--dir DIR]`; `python -m bench --list`.

`python -m bench soak [--minutes N] [--analysers N] [--seed N] [--postgres URL]`: the soak
(not part of `all`: it runs for minutes); exit 1 when one of its checks failed.
"""

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
    "qc": ("bench.qc", "Westgard engine over 100,000 two-level runs against westgard-python"),
    "soak": (
        "bench.soak",
        "N analysers for M minutes under faults (idle sockets, LIS outages, kill -9, a second "
        "trygg run): nothing ACKed lost, duplicated or out of order",
    ),
}
#: benches `all` leaves out (long runs with their own options)
NOT_IN_ALL = ("soak",)


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
    soak = parser.add_argument_group("soak")
    soak.add_argument("--minutes", type=float, help="soak: sending phase (default 10; quick 0.6)")
    soak.add_argument("--analysers", type=int, help="soak: analysers (default 100; quick 10)")
    soak.add_argument("--seed", type=int, help="soak: seed of the fault plan and the analysers")
    soak.add_argument(
        "--postgres",
        metavar="URL",
        help="soak: a PostgreSQL server's admin URL (e.g. "
        "postgresql+psycopg://postgres@127.0.0.1:5432/postgres); a fresh database is created "
        "there for the run and dropped after",
    )
    soak.add_argument("--keep", action="store_true", help="soak: keep the run's directory")
    args = parser.parse_args(argv)
    if args.minutes is not None and args.minutes <= 0:
        parser.error("--minutes must be more than 0")
    if args.analysers is not None and args.analysers < 1:
        parser.error("--analysers must be at least 1")
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
    names = [n for n in BENCHES if n not in NOT_IN_ALL] if args.name == "all" else [args.name]
    failed = False
    for name in names:
        module = importlib.import_module(BENCHES[name][0])
        started = time.perf_counter()
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        reporter.say(f"{name}: {os.cpu_count()} CPUs, load average {load} (1/5/15 min) at start")
        extra = {}
        if name == "soak":
            extra = {
                "minutes": args.minutes,
                "analysers": args.analysers,
                "seed": args.seed,
                "postgres": args.postgres,
                "keep": args.keep,
            }
        passed = module.run(reporter, quick=args.quick, directory=args.dir, **extra)
        failed = failed or passed is False
        reporter.say(f"{name}: done in {time.perf_counter() - started:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
