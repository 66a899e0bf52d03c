"""The soak, short: `python -m bench soak` for 30 s with 10 analysers and every kind of fault.

The full soak (100 analysers, 10 minutes) is a bench run by hand; this one runs in CI. It
drives a real `trygg run` child, kills it with SIGKILL and starts it again, stops the LIS,
opens idle sockets and tries a second `trygg run`; then every result an analyser got a
positive ACK for must be at the LIS once, in order, under one control ID, and the audit
chain must verify (the bench exits 1 otherwise, and says why).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: 30 s of sending with the quick soak's rates, 10 analysers, the fault plan of seed 9
SOAK = (sys.executable, "-m", "bench", "soak", "--quick", "--minutes", "0.5")
OPTIONS = ("--analysers", "10", "--seed", "9")


@pytest.mark.timeout(150)
def test_a_short_soak_loses_nothing_and_refuses_a_second_gateway(tmp_path: Path) -> None:
    out = tmp_path / "soak.jsonl"
    done = subprocess.run(
        [*SOAK, *OPTIONS, "--json", str(out), "--dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, f"the soak failed:\n{done.stdout}\n{done.stderr}"
    assert "soak verdict: PASS" in done.stdout, done.stdout
    figures = {
        line["metric"]: line["value"]
        for line in map(json.loads, out.read_text(encoding="utf-8").splitlines())
    }
    for check in ("missing", "duplicates", "changed_control_ids", "out_of_order"):
        assert figures[check] == 0, (check, done.stdout)
    assert figures["store_results_in_two_messages"] == 0
    for fault in ("idle_sockets", "lis_stops", "gateway_kills", "second_runs"):
        assert figures[f"faults_{fault}"] >= 1, (fault, done.stdout)
    assert figures["second_run_refusals"] == figures["faults_second_runs"]
    assert figures["gateway_starts"] == figures["faults_gateway_kills"] + 1
    assert figures["analyser_acked_results"] > 500, done.stdout
    assert figures["lis_results"] >= figures["analyser_acked_results"]
    assert figures["audit_rows"] > 0
