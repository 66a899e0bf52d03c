"""The benchmarks keep their output contract: one JSON line per figure, with sane values."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import CONTRACT_KEYS

REPO = Path(__file__).resolve().parents[1]

#: LIS-side e2e figures may be 0 on a saturated gateway: the forwarder can starve (see bench/e2e)
MAY_BE_ZERO = ("lis_acked_results", "lis_messages", "lis_drain_results")


def run_bench(name: str, out: Path, timeout_s: float) -> list[dict[str, object]]:
    # tests talk to 127.0.0.1 only: no peer downloads (a bench run by hand may fetch them)
    env = {**os.environ, "TRYGG_BENCH_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            name,
            "--quick",
            "--json",
            str(out),
            "--dir",
            str(out.parent),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, f"bench {name} failed:\n{proc.stdout}\n{proc.stderr}"
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines, f"bench {name} wrote no JSON lines:\n{proc.stdout}"
    figures = [json.loads(line) for line in lines]
    for figure in figures:
        assert tuple(figure) == CONTRACT_KEYS, figure
        assert figure["bench"] == name
        assert isinstance(figure["metric"], str) and figure["metric"]
        assert isinstance(figure["unit"], str) and figure["unit"]
        value = figure["value"]
        assert isinstance(value, int | float) and math.isfinite(value), figure
        if str(figure["metric"]).startswith(MAY_BE_ZERO):
            assert value >= 0, figure
        else:
            assert value > 0, figure
        if figure["peer"] is None:
            assert figure["peer_value"] is None and figure["ratio"] is None, figure
        else:
            peer_value = figure["peer_value"]
            assert isinstance(peer_value, int | float) and peer_value > 0, figure
            ratio = figure["ratio"]
            assert isinstance(ratio, int | float) and ratio >= 0, figure
    return figures


def test_bench_lists_its_benchmarks() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    names = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert {"ceilings", "e2e", "latency", "rss", "astm", "serial"} <= names


@pytest.mark.timeout(60)
def test_ceilings_quick_writes_the_contract(tmp_path: Path) -> None:
    figures = run_bench("ceilings", tmp_path / "ceilings.jsonl", timeout_s=55)
    metrics = {f["metric"] for f in figures}
    assert {"sqlite_commit_per_row", "fsync", "python_hl7_server", "loopback_echo"} <= metrics


@pytest.mark.timeout(90)
def test_e2e_quick_writes_the_contract(tmp_path: Path) -> None:
    figures = run_bench("e2e", tmp_path / "e2e.jsonl", timeout_s=85)
    metrics = {f["metric"] for f in figures}
    assert any(m.startswith("lis_acked_results") for m in metrics)
    assert any(m.startswith("analyser_acked_results") for m in metrics)


@pytest.mark.timeout(60)
def test_serial_quick_writes_the_contract(tmp_path: Path) -> None:
    figures = run_bench("serial", tmp_path / "serial.jsonl", timeout_s=55)
    shares = [f for f in figures if "share" in str(f["metric"])]
    assert shares, figures
    # a share of the line rate is a fraction, whatever the machine's load
    assert all(0 < float(f["value"]) <= 100 for f in shares if f["unit"] == "%"), shares


@pytest.mark.timeout(60)
def test_astm_codec_quick_writes_the_contract(tmp_path: Path) -> None:
    figures = run_bench("astm", tmp_path / "astm.jsonl", timeout_s=55)
    metrics = {str(f["metric"]) for f in figures}
    assert any("decode" in m for m in metrics) and any("fram" in m for m in metrics), metrics
    # astm-2025 is installed with the test extras, so every figure has a peer beside it
    assert all(f["peer"] for f in figures if "decode" in str(f["metric"])), figures


@pytest.mark.timeout(60)
def test_qc_quick_writes_the_contract(tmp_path: Path) -> None:
    figures = run_bench("qc", tmp_path / "qc.jsonl", timeout_s=55)
    by_metric = {str(f["metric"]): f for f in figures}
    # westgard-python is installed with the test extras: the shared rules are timed against it
    assert by_metric["engine_shared_rules"]["peer"] == "westgard-python"
    # the engines differ only where westgard-python's 2of3-2s does not end at the newest value
    assert float(by_metric["runs_with_the_same_violations"]["value"]) > 95
