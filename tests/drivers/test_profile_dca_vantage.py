"""Siemens DCA Vantage profile: the corpus message, round trips, controls, bad fields, fuzzing."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bench.corpus import corpus_dir
from drivers.analysers.profiles.dca_vantage import PROFILE
from drivers.model import Method, Observation
from drivers.protocols.astm.frames import MAX_FRAME, decode_frame
from drivers.protocols.astm.records import DEFAULT_DELIMITERS, Delimiters, Record, parse_message
from gateway.errors import RemoteProtocolError
from simulators.astm_models import SimSample
from simulators.astm_models.dca_vantage import MODEL
from tests.drivers import astm_profile_helpers as helpers
from tests.drivers.astm_profile_helpers import needs_file, with_component

CORPUS_FILE = corpus_dir("astm") / "siemens_dca_vantage__senaite.astm.txt"
needs_corpus = needs_file(CORPUS_FILE)


def corpus_records() -> list[Record]:
    return helpers.corpus_records(PROFILE, CORPUS_FILE)


def round_trip(sample: SimSample, delimiters: Delimiters) -> list[Observation]:
    return helpers.round_trip(PROFILE, "dca-1", sample, delimiters)


# --- the analyser's own message -------------------------------------------------------------


@needs_corpus
def test_corpus_message_maps_to_albumin_creatinine_and_ratio() -> None:
    # R.12 20240820151030 is Oslo summer time (UTC+2)
    lot = ("reagent_lot", "0090")
    albumin = Observation(
        instrument_id="dca-1",
        test_code="Alb",
        value="63.7",
        value_type="NM",
        unit="mg/L",
        method=Method.MEASURED,
        # R.12 20240820151030 is Oslo summer time (UTC+2)
        performed_at=datetime(2024, 8, 20, 13, 10, 30, tzinfo=UTC),
        operator_id="",
        specimen_id="660",
        patient_id="BU24R554",
        result_status="F",
        instrument_serial="S067337",
        test_name="Albumin, urine",
        is_qc=False,
        extra=(lot, ("correction_slope", "1.000"), ("correction_offset", "0.0 mg/L")),
    )
    creatinine = replace(
        albumin,
        test_code="Crt",
        value="230.8",
        unit="mg/dL",
        test_name="Creatinine, urine",
        extra=(lot, ("correction_slope", "1.000"), ("correction_offset", "0.0 mg/dL")),
    )
    ratio = replace(
        albumin,
        test_code="Ratio",
        value="27.6",
        unit="mg/g",
        test_name="Albumin/creatinine ratio, urine",
        extra=(lot,),
    )
    assert PROFILE.observations("dca-1", corpus_records()) == (albumin, creatinine, ratio)


@needs_corpus
def test_corpus_frame_is_longer_than_e1381_allows_so_the_profile_is_lenient() -> None:
    frame = helpers.corpus_frame(CORPUS_FILE)
    assert len(frame) > MAX_FRAME
    with pytest.raises(RemoteProtocolError):
        decode_frame(frame, expected_number=1, lenient=False)
    assert PROFILE.lenient


@needs_corpus
def test_simulated_message_has_the_analysers_layout() -> None:
    sample = SimSample(
        specimen_id="660",
        patient_id="BU24R554",
        operator_id="",
        performed_at=datetime(2024, 8, 20, 13, 10, 30, tzinfo=UTC),
        values=(("Alb", "63.7", "mg/L"), ("Crt", "230.8", "mg/dL"), ("Ratio", "27.6", "mg/g")),
        instrument_serial="S067337",
    )
    simulated = MODEL.message(sample)
    real = corpus_records()
    # Only the transmission time (H.14) and the reagent lot (O.4.2) cannot be known.
    simulated[0] = with_component(simulated[0], 14, real[0].value(14))
    simulated[2] = with_component(simulated[2], 4, real[2].value(4, 0, 1), component=1)
    assert simulated == real


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("qc", [False, True], ids=["patient", "control"])
def test_simulated_samples_round_trip(qc: bool) -> None:
    start = datetime(2024, 2, 5, 10, 0, tzinfo=UTC)
    units: set[str] = set()
    for seed in range(150):
        rng = random.Random(seed)
        now = start + timedelta(days=seed * 2, seconds=seed * 41, microseconds=999)
        sample = MODEL.sample(
            rng, operator_id=f"OP{seed}", qc=qc, patient_id="24057012345", now=now
        )
        delimiters = Delimiters("!", "~", "^", "&") if seed % 2 else DEFAULT_DELIMITERS
        found = round_trip(sample, delimiters)
        assert [(o.test_code, o.value, o.unit) for o in found] == list(sample.values)
        units.update(o.unit for o in found)
        for obs in found:
            extra = dict(obs.extra)
            assert obs.performed_at == now.replace(microsecond=0)
            assert obs.operator_id == f"OP{seed}"
            assert obs.specimen_id == sample.specimen_id and len(obs.specimen_id) == 3
            assert obs.instrument_serial == sample.instrument_serial
            assert obs.method is Method.MEASURED
            assert obs.abnormal_flags == ((obs.value[0],) if obs.value[0] in "<>" else ())
            assert obs.is_qc is qc
            assert (obs.patient_id, obs.control_level, obs.control_lot) == (
                ("", sample.control_level, sample.control_lot) if qc else ("24057012345", "", "")
            )
            assert extra["reagent_lot"].isdigit()
            if obs.test_code != "Ratio":  # the user correction follows HbA1c, Alb and Crt
                assert extra["correction_slope"] == "1.000"
                assert extra["correction_offset"] == f"0.0 {obs.unit}"
    if qc:  # controls report one unit per test (IFCC, SI): their targets are in it
        assert units == {"mmol/mol", "mg/L", "mmol/L", "mg/mmol"}
    else:  # both reporting conventions: NGSP % and IFCC mmol/mol, conventional and SI ACR
        assert {"%", "mmol/mol", "mg/dL", "mmol/L", "mg/g", "mg/mmol"} <= units


# --- controls and other message kinds ---------------------------------------------------------

CONTROL = (
    b"H|\\^&|||DCA VANTAGE^04.04.00.00^S067337|||||||P||20240110083000\r"
    b"P|1|Abnormal^54321\r"
    b"O|1||012^1234||||||||Q||||||||||||||F\r"
    b"R|1|^^^HbA1c|9.8|%||||F||KARI|20240110082400\r"
    b"C|1|I|1.000^0.0 %^NGSP|G\r"
    b"L|1|N\r"
)


def test_control_run_is_recognised_as_qc() -> None:
    (obs,) = PROFILE.observations("dca-1", parse_message(CONTROL))
    assert obs.is_qc
    assert (obs.control_level, obs.control_lot, obs.patient_id) == ("Abnormal", "54321", "")
    assert (obs.test_code, obs.value, obs.unit, obs.operator_id) == ("HbA1c", "9.8", "%", "KARI")
    assert obs.performed_at == datetime(2024, 1, 10, 7, 24, tzinfo=UTC)
    assert dict(obs.extra) == {
        "reagent_lot": "1234",
        "correction_slope": "1.000",
        "correction_offset": "0.0 %",
        "primary_unit": "NGSP",
    }


def test_patient_run_without_action_code_is_not_qc() -> None:
    text = CONTROL.replace(b"||Q||", b"||||").replace(b"Abnormal^54321", b"PASIENT7")
    (obs,) = PROFILE.observations("dca-1", parse_message(text))
    assert not obs.is_qc
    assert (obs.patient_id, obs.control_level, obs.control_lot) == ("PASIENT7", "", "")


def test_comment_after_the_order_is_not_attached_to_a_result() -> None:
    text = CONTROL.replace(b"R|1|", b"C|1|I|54^M^^^^private note|G\rR|1|")
    (obs,) = PROFILE.observations("dca-1", parse_message(text))
    assert "private note" not in repr(obs)


def test_service_mode_message_maps_like_any_other() -> None:
    """H.12 = D is the gateway's to judge (its processing-ID rule keeps it as test data)."""
    text = CONTROL.replace(b"|||||||P||", b"|||||||D||")
    assert PROFILE.observations("dca-1", parse_message(text)) == PROFILE.observations(
        "dca-1", parse_message(CONTROL)
    )


# --- malformed fields --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "number", "component", "text", "field"),
    [
        (3, 4, 0, "9.8%", "R.4"),
        (3, 4, 0, "---", "R.4"),
        (3, 3, 3, "", "R.3"),
        (3, 7, 0, "HH", "R.7"),
        (3, 9, 0, "P", "R.9"),
        (3, 12, 0, "2024011008240", "R.12"),
        (3, 12, 0, "20240230082400", "R.12"),
        (3, 13, 0, "x", "R.13"),
        (2, 4, 0, "A12", "O.4"),
        (2, 12, 0, "X", "O.12"),
        (0, 14, 0, "2024-01-10", "H.14"),
    ],
)
def test_malformed_field_is_named(
    index: int, number: int, component: int, text: str, field: str
) -> None:
    helpers.assert_refused_quietly(
        PROFILE,
        helpers.with_text(parse_message(CONTROL), index, number, text, component),
        field,
        text,
    )


# --- fuzzing ---------------------------------------------------------------------------------

test_any_text_in_any_field_maps_or_is_refused = helpers.fuzz_any_text(
    PROFILE, parse_message(CONTROL), components=5
)
test_any_records_map_or_are_refused = helpers.fuzz_any_records(PROFILE)
