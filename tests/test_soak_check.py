"""The soak's verdict (bench.soak_check) and fault plan (bench.soak_chaos) on made-up runs."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

import pytest

from bench.soak_chaos import KINDS, plan
from bench.soak_check import Arrival, ResultKey, parse_oru, read_arrivals, reconcile
from drivers.model import Method
from gateway.config import LisConfig
from gateway.lis.oru import OutboundResult, build_oru
from gateway.model import Result

A1: ResultKey = ("an-001", "S1", "CRP")
A2: ResultKey = ("an-001", "S2", "CRP")
A3: ResultKey = ("an-001", "S3", "GLU")
B1: ResultKey = ("an-002", "T1", "CRP")


def arrival(control_id: str, *keys: ResultKey, text: str = "", ack: str | None = "AA") -> Arrival:
    return Arrival(control_id, ack, text or f"message {control_id}", keys)


def test_a_clean_run_passes() -> None:
    acked = {"an-001": [A1, A2, A3], "an-002": [B1]}
    result = reconcile(acked, [arrival("C1", A1, B1), arrival("C2", A2, A3)])
    assert result.failures == []
    assert (result.acked, result.acked_at_lis, result.lis_results) == (4, 4, 4)


def test_a_result_never_at_the_lis_is_missing() -> None:
    result = reconcile({"an-001": [A1, A2]}, [arrival("C1", A1)])
    assert result.missing == [A2]
    assert result.failures == ["1 ACKed result(s) never reached the LIS"]


def test_a_resend_under_the_same_control_id_is_no_duplicate() -> None:
    # the LIS was killed after recording C1 and before its ACK went out: C1 comes again
    first, again = arrival("C1", A1, text="MSH|C1|a"), arrival("C1", A1, text="MSH|C1|a")
    result = reconcile({"an-001": [A1]}, [first, again])
    assert result.failures == []
    assert result.resends == 1 and result.duplicates == {}
    # ... but a repeat must be the same message: here it carried one more result
    changed = reconcile(
        {"an-001": [A1, A2]}, [first, arrival("C1", A1, A2, text="MSH|C1|b")]
    ).changed
    assert changed == ["C1"]


def test_a_result_under_two_control_ids_is_a_duplicate() -> None:
    result = reconcile({"an-001": [A1, A2]}, [arrival("C1", A1, A2), arrival("C2", A2)])
    assert result.duplicates == {A2: ["C1", "C2"]}
    assert result.failures == ["1 result(s) reached the LIS under two control IDs"]


def test_duplicates_count_also_results_no_analyser_saw_acked() -> None:
    # the ACK to the analyser was lost in a kill, yet the gateway must still send it once
    result = reconcile({"an-001": []}, [arrival("C1", A1), arrival("C2", A1)])
    assert result.not_acked_at_lis == 1
    assert list(result.duplicates) == [A1]


def test_order_is_per_instrument_and_per_lis_message() -> None:
    acked = {"an-001": [A1, A2, A3], "an-002": [B1]}
    # within one ORU the OBX order is the patient/specimen grouping: not an order
    assert reconcile(acked, [arrival("C1", A3, A1, A2), arrival("C2", B1)]).out_of_order == []
    # another instrument's results in between or ahead are no concern of an-001's order
    assert reconcile(acked, [arrival("C0", B1), arrival("C1", A1, A2, A3)]).out_of_order == []
    # A2, ACKed after A1, reached the LIS in a message before A1's: A2 is out of order
    late = reconcile(acked, [arrival("C1", A2), arrival("C2", A1), arrival("C3", A3)])
    assert late.out_of_order == [A2]
    assert "1 result(s) reached the LIS out of order" in late.failures


def test_order_uses_first_arrivals_so_a_resend_does_not_count() -> None:
    acked = {"an-001": [A1, A2]}
    arrivals = [arrival("C1", A1), arrival("C2", A2), arrival("C1", A1)]
    assert reconcile(acked, arrivals).out_of_order == []


def test_a_message_the_lis_did_not_accept_fails_the_run() -> None:
    result = reconcile({"an-001": [A1]}, [arrival("C1", A1, ack="AE")])
    assert result.rejected == ["C1"]


def test_the_same_result_acked_twice_to_an_analyser_fails() -> None:
    result = reconcile({"an-001": [A1, A1]}, [arrival("C1", A1)])
    assert result.repeated_acks == 1 and result.failures


def _result(instrument: str, specimen: str, code: str, nlk: str) -> Result:
    return Result(
        instrument_id=instrument,
        test_code=code,
        value="12",
        value_type="NM",
        unit="mg/L",
        reference_range="",
        abnormal_flags=(),
        operator_id="OP1",
        method=Method.MEASURED,
        performed_at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
        specimen_id=specimen,
        patient_id="01019012480",
        nlk_code=nlk,
        test_name=code,
        instrument_serial="SIM-0001",
    )


def test_parse_oru_reads_the_gateways_own_message() -> None:
    batch = [
        OutboundResult(1, _result("an-001", "S1", "CRP", "NPU19748")),
        OutboundResult(2, _result("an-002", "T1", "GLU", "")),
        OutboundResult(3, _result("an-001", "S2", "CRP", "NPU19748")),
    ]
    text = build_oru(
        batch,
        control_id="C1",
        now=datetime(2026, 1, 5, 9, 1, tzinfo=UTC),
        lis=LisConfig(url="tcp://127.0.0.1:2575"),
    )
    keys = parse_oru(text, {"NPU19748": "CRP"})
    # one patient: grouped by specimen, so S1, S2 (an-001) and T1 (an-002) in some order
    assert sorted(keys) == [
        ("an-001", "S1", "CRP"),
        ("an-001", "S2", "CRP"),
        ("an-002", "T1", "GLU"),
    ]


def test_read_arrivals_counts_a_torn_last_line() -> None:
    line = json.dumps({"control_id": "C1", "ack_code": "AA", "message": "MSH|^~\\&\r"})
    arrivals, torn = read_arrivals([line, line[:20]], {})
    assert [a.control_id for a in arrivals] == ["C1"] and torn == 1


@pytest.mark.parametrize("seed", range(20))
def test_the_plan_has_every_fault_kind_in_time(seed: int) -> None:
    faults = plan(seed, duration_s=36, analysers=10)
    assert Counter(f.kind for f in faults).keys() == set(KINDS)
    moments = [f.at_s for f in faults]
    assert moments == sorted(moments) and moments[0] > 0 and moments[-1] < 36
    assert all(0 <= i < 10 for f in faults for i in f.targets)
    kills = [f for f in faults if f.kind == "kill"]
    assert kills[0].targets, "the first kill always has silent peers racing the restart"
    assert plan(seed, duration_s=36, analysers=10) == faults  # the seed decides it all


def test_a_ten_minute_plan_has_about_one_fault_every_20_s() -> None:
    faults = plan(9, duration_s=600, analysers=100)
    assert len(faults) == 30
    assert all(len(f.targets) <= 5 for f in faults)
