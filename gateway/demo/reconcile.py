"""The demo's `lost` count: what the simulated analysers were told arrived, against the store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from drivers.registry import DRIVERS
from gateway.ingest import digest
from gateway.store.queries import qc_result_keys, raw_message_digests, result_keys

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from gateway.demo.plan import AstmDemoSim
    from simulators.hl7_analyser import Hl7AnalyserSim


def reconcile(engine: Engine, hl7: Sequence[Hl7AnalyserSim], astm: Sequence[AstmDemoSim]) -> int:
    """Results an analyser was told were received that the gateway does not hold: must be 0.

    HL7: every observation of every message answered AA. ASTM: every message whose last frame
    the gateway ACKed must be stored as sent (raw bytes), and each observation the analyser's
    profile reads from it must be a stored result, or a stored QC result for control runs.
    A message that could not be decoded counts as kept when its raw bytes are stored
    (quarantine keeps it).
    """
    with engine.connect() as conn:
        stored = result_keys(conn)
        controls = qc_result_keys(conn)
        raws = raw_message_digests(conn)
    lost = 0
    for hl7_sim in hl7:
        for obs in hl7_sim.ledger.acked:
            key = (hl7_sim.options.instrument_id, obs.specimen_id, obs.test_code, obs.value)
            lost += key not in stored
    for entry in astm:
        decode = DRIVERS[entry.driver].decode
        for acked in entry.sim.ledger.acked:
            if (entry.instrument_id, digest(acked.raw)) not in raws:
                lost += max(1, len(acked.sample.values))
                continue
            message = decode(entry.instrument_id, acked.raw, acked.acked_at)
            for o in message.observations:
                if o.is_qc:
                    lost += (o.instrument_id, o.test_code, o.value, o.control_lot) not in controls
                else:
                    key = (o.instrument_id, o.specimen_id, o.test_code, o.value.strip())
                    lost += key not in stored
    return lost
