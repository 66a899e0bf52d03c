"""What a rejected run's evaluation stores: the target snapshot, the z-score and the violations
as the charts read them ({rule, kind, error_type, levels, runs: the qc_results ids involved})."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from gateway.store.tables import qc_evaluations, qc_results
from tests.gateway.hold_site import NOW
from tests.gateway.test_qc_live import add_lots, controls, qc_site


def test_a_2_2s_rejection_names_the_values_involved(tmp_path: Path) -> None:
    site = qc_site(tmp_path)
    try:
        add_lots(site)  # mean 48, SD 2 for levels 1 and 2
        t0 = NOW - timedelta(hours=3)
        controls(site, "48", "48", at=t0)
        controls(site, "53", "48", at=t0 + timedelta(hours=1))  # level 1 at +2.5 SD
        controls(site, "53", "48", at=t0 + timedelta(hours=2))  # again: 2-2s across runs
        with site.engine.connect() as conn:
            rows = conn.execute(
                select(qc_evaluations, qc_results.c.value)
                .join(qc_results, qc_results.c.id == qc_evaluations.c.qc_result_id)
                .order_by(qc_evaluations.c.id)
            ).all()
    finally:
        site.engine.dispose()
    last_l1 = [r for r in rows if r.level == "1"][-1]
    assert last_l1.verdict == "reject"
    assert (last_l1.target_mean, last_l1.target_sd, last_l1.target_source) == (
        "48",
        "2",
        "manufacturer",
    )
    assert float(last_l1.z) == 2.5
    found = {v["rule"]: v for v in json.loads(last_l1.violations)}
    assert "2-2s" in found
    v = found["2-2s"]
    assert v["kind"] == "reject" and v["error_type"] == "systematic" and v["levels"] == ["1"]
    level_1_at_53 = sorted(r.qc_result_id for r in rows if r.level == "1" and r.value == "53")
    assert v["runs"] == level_1_at_53
    # the level-2 values of the same runs were fine
    assert all(r.verdict == "accept" for r in rows if r.level == "2")
