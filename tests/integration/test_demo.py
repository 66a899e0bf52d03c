"""`trygg demo --seconds N --summary-json PATH` runs, stops cleanly and loses nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.integration.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


def demo_config(tmp_path: Path) -> tuple[Path, int]:
    text = (ROOT / "config" / "demo.toml").read_text(encoding="utf-8")
    web = free_port()
    for old in ("2575", "5101", "5102"):
        text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{free_port()}")
    text = text.replace("127.0.0.1:8470", f"127.0.0.1:{web}")
    text = text.replace("sqlite:///trygg-demo/", f"sqlite:///{tmp_path}/")
    path = tmp_path / "demo.toml"
    path.write_text(text, encoding="utf-8")
    return path, web


def test_demo_runs_for_n_seconds_and_reconciles(tmp_path: Path) -> None:
    config, _web = demo_config(tmp_path)
    summary = tmp_path / "summary.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "demo",
            "--config",
            str(config),
            "--seconds",
            "6",
            "--summary-json",
            str(summary),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(summary.read_text(encoding="utf-8"))
    assert set(data) == {
        "received",
        "held",
        "queued",
        "sent",
        "acknowledged",
        "rejected",
        "quarantined",
        "lost",
    }
    assert data["lost"] == 0
    assert data["received"] > 50 and data["acknowledged"] > 0
    # the demo drains the outbox before it stops; the rest are held, one or more reasons each
    assert data["queued"] == data["sent"] == data["rejected"] == 0
    held_results = data["received"] - data["acknowledged"]
    assert 0 < held_results <= sum(data["held"].values())
    assert "Instrumenter" in done.stdout


def test_demo_serves_the_dashboard_while_running(tmp_path: Path) -> None:
    config, web = demo_config(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--config", str(config), "--seconds", "8"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        body = ""
        for _ in range(60):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{web}/api/health", timeout=1) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.2)
        assert '"ok"' in body
    finally:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
