"""HORIBA Yumizen H500 profile: corpus QC messages, simulated round trips, bad fields, fuzz."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from drivers.analysers.profiles.yumizen_h500 import PROFILE
from drivers.model import Method
from drivers.protocols.astm.frames import STX, decode_frame, encode_frames
from drivers.protocols.astm.records import (
    DEFAULT_DELIMITERS,
    Delimiters,
    Record,
    encode_message,
    encode_record,
    parse_message,
)
from gateway.errors import RemoteProtocolError
from simulators.astm_models.yumizen_h500 import MODEL, QC_MATERIALS, QC_TARGETS
from tests.drivers import astm_profile_helpers as helpers
from tests.drivers.astm_profile_helpers import CORPUS, FNR, NOW, SUMMER, by_code
from tests.drivers.astm_profile_helpers import needs_corpus_dir as needs_corpus

H500_REAGENTS = (
    ("reagent_lot:CLEANER", "221114I1*"),
    ("reagent_expiry:CLEANER", "20230617"),
    ("reagent_lot:DILUENT", "220729H1"),
    ("reagent_expiry:DILUENT", "20230729"),
    ("reagent_lot:LYSE", "221026M11"),
    ("reagent_expiry:LYSE", "20230527"),
)


def h500_text() -> bytes:
    """The H500 QC capture: one record per frame, frames decoded one by one.

    The stored frame numbers do not run in sequence (1 2 3 4 5 1 1 1 4 5 6 ...: the test file
    was assembled from separate captures), and the M frames reach 26 kB, so each frame is
    decoded leniently without a frame-number check. Every checksum verifies.
    """
    data = (CORPUS / "horiba_yumizen_h500_qc__senaite.astm.txt").read_bytes()
    frames = [bytes([STX]) + chunk for chunk in data.split(bytes([STX]))[1:]]
    assert len(frames) == 31 and max(map(len, frames)) > 26_000
    return b"".join(decode_frame(f, expected_number=None, lenient=True).text for f in frames)


def h550_records() -> list[Record]:
    """The go-astm H550 QC file: plain records with LF line ends, every backslash doubled.

    The file was written from a Go string, so ``\\`` appears as ``\\\\`` everywhere: in the
    header (``H|\\\\^&``, which no E1394 parser can take as delimiters: it would declare the
    backslash as both repeat and component delimiter) and in the reagent repeats. The text is
    restored by undoubling before parsing; the raw header is checked to be refused cleanly.
    """
    raw = (CORPUS / "horiba_yumizen_h550_qc__go-astm.astm").read_bytes()
    assert raw.startswith(b"H|\\\\^&|")
    try:
        parse_message(raw.split(b"\n")[0])
    except RemoteProtocolError as exc:
        assert exc.field in ("header", "delimiters")
    return parse_message(raw.replace(b"\\\\", b"\\"), lenient=True)


# ---------------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------------


@needs_corpus
def test_h500_qc_message_maps_to_qc_observations_with_lots() -> None:
    records = parse_message(h500_text(), lenient=True)
    assert [r.type for r in records].count("M") == 4  # 3 curves skipped, 1 reagent record read
    observations = PROFILE.observations("yz-1", records)
    obs = by_code(observations)
    assert len(observations) == 21
    mcv = obs["MCV"]
    assert (mcv.value, mcv.unit, mcv.reference_range, mcv.abnormal_flags) == (
        "90.6",
        "um3",
        "84.0-94.0",
        ("N",),
    )
    assert ("loinc", "787-2") in mcv.extra
    assert (obs["PLT"].value, obs["PLT"].reference_range) == ("308", "231-291")
    assert (obs["WBC"].value, obs["HGB"].value, obs["EOS%"].value) == ("8.30", "13.3", "5.0")
    for o in observations:
        assert o.is_qc
        assert (o.control_lot, o.control_level, o.specimen_id) == ("PX440N", "normal", "PX440N")
        assert (o.operator_id, o.patient_id, o.instrument_serial) == ("MATYL", "", "910YOXH02826")
        assert o.performed_at == datetime(2023, 3, 29, 9, 6, 31, tzinfo=UTC)  # 11:06 CEST
        assert (o.result_status, o.method, o.value_type) == ("F", Method.MEASURED, "NM")
        assert set(H500_REAGENTS) <= set(o.extra)
        assert ("order_comment", "CONTROL_FAILED PLT_ABOVE_TOLERANCE") in o.extra
        assert ("order_comment", "ABXdifftrol N") in o.extra
        assert ("control_level_text", "CTRL MEDIUM") in o.extra


@needs_corpus
def test_h550_qc_file_maps_low_control() -> None:
    observations = PROFILE.observations("yz-2", h550_records())
    obs = by_code(observations)
    assert len(observations) == 20
    assert (obs["HGB"].value, obs["PLT"].value, obs["HCT"].value) == ("6.0", "67", "18.4")
    assert obs["PLT"].reference_range == "55-73"
    for o in observations:
        assert (o.control_lot, o.control_level, o.is_qc) == ("PX449L", "low", True)
        assert (o.operator_id, o.instrument_serial) == ("LABOR", "909YAXH02732")
        assert o.performed_at == datetime(2024, 9, 12, 5, 3, 43, tzinfo=UTC)
        assert ("reagent_lot:DILUENT", "423H1(") in o.extra
        assert ("analyser_model", "H550") in o.extra


# ---------------------------------------------------------------------------------------------
# Simulated messages round-trip
# ---------------------------------------------------------------------------------------------

ODD_DELIMITERS = Delimiters(field="!", repeat="~", component="\\", escape="&")


@pytest.mark.parametrize("qc", [False, True], ids=["patient", "qc"])
def test_simulated_message_round_trips(qc: bool) -> None:
    for seed in range(50):
        now = SUMMER if seed % 2 else NOW
        sample = MODEL.sample(
            random.Random(seed), operator_id="KARI", qc=qc, patient_id=FNR, now=now
        )
        delimiters = ODD_DELIMITERS if seed % 3 == 0 else DEFAULT_DELIMITERS
        records = MODEL.message(sample, delimiters)
        raw = encode_message(records, delimiters, encoding=PROFILE.encoding)
        # one record per frame, as the H500 sends them: the curve records exceed one frame
        texts = [encode_record(r, delimiters).encode(PROFILE.encoding) + b"\r" for r in records]
        assert b"".join(texts) == raw
        assert any(len(encode_frames(t)) > 1 for t in texts)
        observations = PROFILE.observations("inst", parse_message(raw, encoding=PROFILE.encoding))
        assert [(o.test_code, o.value, o.unit) for o in observations] == list(sample.values)
        for o in observations:
            assert (o.specimen_id, o.patient_id, o.operator_id) == (
                sample.specimen_id,
                sample.patient_id,
                sample.operator_id,
            )
            assert o.performed_at == sample.performed_at
            assert o.instrument_serial == sample.instrument_serial
            assert (o.is_qc, o.control_lot, o.control_level) == (
                sample.is_qc,
                sample.control_lot,
                sample.control_level,
            )
            assert o.reference_range and o.abnormal_flags
            assert any(k == "reagent_lot:LYSE" for k, _v in o.extra)
            if qc:
                assert o.abnormal_flags == ("N",)


def test_simulated_qc_levels_and_values_follow_the_control_targets() -> None:
    samples = [
        MODEL.sample(random.Random(s), operator_id="A", qc=True, patient_id=FNR, now=NOW)
        for s in range(30)
    ]
    assert {s.control_level for s in samples} == {"low", "normal", "high"}
    for s in samples:
        assert s.control_lot == s.specimen_id and s.control_lot[-1] == s.control_level[0].upper()
        wbc = float(dict((c, v) for c, v, _u in s.values)["WBC"])
        target = next(m for m in QC_MATERIALS if (m.test_code, m.level) == ("WBC", s.control_level))
        assert target.mean == pytest.approx(QC_TARGETS[s.control_level].wbc)
        assert target.mean is not None and target.sd is not None
        assert abs(wbc - target.mean) <= 4 * target.sd  # drawn around the insert's value


def test_simulated_patient_cbc_is_plausible_and_consistent() -> None:
    for seed in range(50):
        sample = MODEL.sample(
            random.Random(seed), operator_id="A", qc=False, patient_id=FNR, now=NOW
        )
        v = {code: float(value) for code, value, _unit in sample.values}
        assert v["MCV"] == pytest.approx(v["HCT"] / v["RBC"] * 10, rel=0.02)
        assert v["MCH"] == pytest.approx(v["HGB"] / v["RBC"] * 10, rel=0.03)
        assert sum(v[f"{c}%"] for c in ("NEU", "LYM", "MON", "EOS", "BAS")) == pytest.approx(
            100, abs=0.5
        )
        assert v["NEU#"] == pytest.approx(v["WBC"] * v["NEU%"] / 100, abs=0.02)
        assert sample.patient_id == FNR and not sample.is_qc


# ---------------------------------------------------------------------------------------------
# Field-level behaviour and malformed input
# ---------------------------------------------------------------------------------------------


def message(*lines: str, processing: str = "P", descriptor: str = "BLOOD") -> list[Record]:
    text = (
        f"H|\\^&|||H500^910YOXH02826^2.2.2.2b|||||||{processing}|LIS2-A2|20230329110749\r"
        f"P|1|{FNR}\r"
        f"O|1|S-42||^^^DIF|R|20230329110631|||||||||{descriptor}||||||||||F\r"
        + "".join(line + "\r" for line in lines)
        + "L|1|N\r"
    )
    return parse_message(text)


def result(r3: str = "^^^WBC^6690-2", r4: str = "8.30", r12: str = "20230329110631") -> str:
    return f"R|1|{r3}|{r4}|10E3/uL|4,00 - 10,00^REFERENCE_RANGE|N||W||ANNE^^USER|{r12}||"


def test_patient_result_fields() -> None:
    (obs,) = PROFILE.observations("i", message(result(r4="8,30"), "C|1|I|SUSPECTED^^ANEMIA|I"))
    assert (obs.patient_id, obs.specimen_id, obs.is_qc, obs.control_lot) == (FNR, "S-42", False, "")
    assert (obs.value, obs.value_type, obs.reference_range) == ("8.30", "NM", "4.00-10.00")
    assert ("value_text", "8,30") in obs.extra
    assert obs.result_status == "W"  # LIS2-A2: validity questionable
    assert obs.comment == "SUSPECTED ANEMIA"


def test_completion_time_is_preferred_and_instrument_id_read_from_r14() -> None:
    line = "R|1|^^^HGB^718-7|10.2|g/dL||L||F||CHCC^^USER|20260402112818|20260402113000|211YADH04038"
    (obs,) = PROFILE.observations("i", message(line))
    assert obs.performed_at == datetime(2026, 4, 2, 9, 30, tzinfo=UTC)
    assert obs.instrument_serial == "211YADH04038"


def test_control_run_from_descriptor_alone() -> None:
    (obs,) = PROFILE.observations("i", message(result(), descriptor="CTRL^^CTRL HIGH"))
    assert (obs.is_qc, obs.control_lot, obs.control_level, obs.patient_id) == (
        True,
        "S-42",
        "high",
        "",
    )


@pytest.mark.parametrize(
    ("records", "field", "offending"),
    [
        (message(result(r12="2023-03-29")), "R.12", b"2023-03-29"),
        (message(result(r12="00010101")), "R.12", b"00010101"),
        (message(result(r3="^^^^6690-2")), "R.3", None),
        (message(result(r3="")), "R.3", None),
        (parse_message("H|\\^&\rP|1\rR|1|^^^WBC|1\rL|1\r"), "R", None),
        (parse_message("O|1|S\r", lenient=True), "record type", b"O"),
    ],
)
def test_malformed_fields_raise_remote_protocol_error_naming_the_field(
    records: list[Record], field: str, offending: bytes | None
) -> None:
    helpers.assert_refused(PROFILE, records, field, offending)


# ---------------------------------------------------------------------------------------------
# Fuzz
# ---------------------------------------------------------------------------------------------

test_arbitrary_field_text_maps_or_raises_remote_protocol_error = helpers.fuzz_field_repeats(
    PROFILE, seed=3
)
test_arbitrary_message_text_maps_or_raises_remote_protocol_error = helpers.fuzz_message_text(
    (PROFILE,), "HPORCML|\\^&\r0123456789 CTRL-.:"
)
