"""The QC facts the e2e bench loads for its QC-rules run (``qc=on``): every analyser's tests
in control, with a due time tomorrow, so the QC lockout rule looks each result's test up and
compares the due time (the full cost of the rule for a result that goes on), not the cheap
"no status known" exit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from gateway.store.engine import make_engine, upgrade
from gateway.store.tables import qc_status


def qc_toml(codes: Iterable[str]) -> str:
    """`[[qc]]` entries (every instrument) for ``codes``: daily controls, lockout "hold"."""
    lines: list[str] = []
    for code in codes:
        lines += ["", "[[qc]]", f'test = "{code}"', 'schedule = "daily"', 'lockout = "hold"']
    return "\n".join(lines) + "\n"


def seed_qc_status(
    store: Path, *, analysers: int, codes: Iterable[str], instrument_id: Callable[[int], str]
) -> None:
    """Create (or extend) the store at ``store`` with an in-control ``qc_status`` row for every
    analyser and test code."""
    engine = make_engine(f"sqlite:///{store}")
    try:
        upgrade(engine)
        now = datetime.now(UTC)
        rows = [
            {
                "instrument_id": instrument_id(index),
                "test_code": code,
                "status": "in_control",
                "since": now,
                "last_run_at": now,
                "last_accepted_at": now,
                "due_at": now + timedelta(days=1),
                "patients_since": 0,
                "updated_at": now,
                "schedule": "daily",
            }
            for index in range(analysers)
            for code in codes
        ]
        with engine.begin() as conn:
            conn.execute(insert(qc_status), rows)
    finally:
        engine.dispose()
