"""Abbott Afinion 2 profile: the corpus message, round trips, controls, bad fields, fuzzing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from bench.corpus import corpus_dir
from drivers.analysers.profiles.afinion2 import PROFILE
from drivers.model import Method, Observation
from drivers.protocols.astm.frames import decode_frame
from drivers.protocols.astm.records import Delimiters, Record, parse_message
from gateway.errors import RemoteProtocolError
from simulators.astm_models import SimSample
from simulators.astm_models.afinion2 import MODEL
from tests.drivers import astm_profile_helpers as helpers
from tests.drivers.astm_profile_helpers import needs_file, with_component

CORPUS_FILE = corpus_dir("astm") / "abbott_afinion2__senaite.astm.txt"
needs_corpus = needs_file(CORPUS_FILE)
OSLO_WINTER = timedelta(hours=1)


def corpus_records() -> list[Record]:
    return helpers.corpus_records(PROFILE, CORPUS_FILE)


def round_trip(sample: SimSample, delimiters: Delimiters) -> list[Observation]:
    return helpers.round_trip(PROFILE, "afinion-1", sample, delimiters)


# --- the analyser's own message -------------------------------------------------------------


@needs_corpus
def test_corpus_message_maps_to_the_hba1c_result() -> None:
    assert PROFILE.observations("afinion-1", corpus_records()) == (
        Observation(
            instrument_id="afinion-1",
            test_code="HbA1c",
            value="5.9",
            value_type="NM",
            unit="%",
            abnormal_flags=(),
            method=Method.MEASURED,
            # R.13 20241206140615 is Oslo winter time (UTC+1)
            performed_at=datetime(2024, 12, 6, 13, 6, 15, tzinfo=UTC),
            operator_id="3643",
            specimen_id="5",
            patient_id="3643",
            result_status="F",
            instrument_serial="AF20052397",
            test_name="Haemoglobin A1c",
            is_qc=False,
            extra=(("reagent_lot", "10228413"),),
        ),
    )


@needs_corpus
def test_corpus_frame_needs_the_profiles_leniency() -> None:
    frame = helpers.corpus_frame(CORPUS_FILE)
    assert frame.endswith(b"\r") and not frame.endswith(b"\r\n")  # CR only after the checksum
    with pytest.raises(RemoteProtocolError):
        decode_frame(frame, expected_number=1, lenient=False)
    assert PROFILE.lenient


@needs_corpus
def test_simulated_message_has_the_analysers_layout() -> None:
    observed = datetime(2024, 12, 6, 13, 6, 15, tzinfo=UTC)
    sample = SimSample(
        specimen_id="5",
        patient_id="3643",
        operator_id="3643",
        performed_at=observed,
        values=(("HbA1c", "5.9", "%"),),
        instrument_serial="AF20052397",
    )
    simulated = MODEL.message(sample)
    real = corpus_records()
    # Only the transmission time (H.14) and the cartridge lot (O.24) cannot be known.
    simulated[0] = with_component(simulated[0], 14, real[0].value(14))
    simulated[2] = with_component(simulated[2], 24, real[2].value(24, 0, 1), component=1)
    assert simulated == real


# --- round trips ------------------------------------------------------------------------------


def expected_flags(value: str) -> tuple[str, ...]:
    return (value[0],) if value[0] in "<>" else ()


@pytest.mark.parametrize("qc", [False, True], ids=["patient", "control"])
def test_simulated_samples_round_trip(qc: bool) -> None:
    start = datetime(2024, 1, 3, 11, 0, tzinfo=UTC)
    assays: set[str] = set()
    for seed in range(150):
        rng = random.Random(seed)
        now = start + timedelta(days=seed * 2, seconds=seed * 37, microseconds=123)
        sample = MODEL.sample(
            rng, operator_id=f"op{seed}", qc=qc, patient_id="01017012345", now=now
        )
        delimiters = Delimiters("|", "@", "^", "\\") if seed % 2 else Delimiters()
        found = round_trip(sample, delimiters)
        assert [(o.test_code, o.value, o.unit) for o in found] == list(sample.values)
        assays.add(found[0].test_code)
        for obs in found:
            assert obs.performed_at == now.replace(microsecond=0)
            assert obs.operator_id == f"op{seed}"
            assert obs.specimen_id == sample.specimen_id
            assert obs.instrument_serial == sample.instrument_serial
            assert obs.method is Method.MEASURED
            assert obs.abnormal_flags == expected_flags(obs.value)
            assert obs.result_status == ("X" if obs.value == "---" else "F")
            assert obs.is_qc is qc
            assert (obs.patient_id, obs.control_level, obs.control_lot) == (
                ("", sample.control_level, sample.control_lot) if qc else ("01017012345", "", "")
            )
            assert dict(obs.extra)["reagent_lot"].isdigit()
    # the simulator covers the whole menu: HbA1c, CRP, the lipid panel and ACR
    assert {"HbA1c", "CRP", "Chol", "Alb"} <= assays


def test_control_levels_and_lots_come_from_the_sample() -> None:
    levels = set()
    for seed in range(40):
        sample = MODEL.sample(
            random.Random(seed), operator_id="1", qc=True, patient_id="x", now=datetime.now(UTC)
        )
        assert sample.patient_id == "" and len(sample.control_lot) == 8
        levels.add(sample.control_level)
    assert levels == {"C I", "C II"}


# --- controls --------------------------------------------------------------------------------

CONTROL = (
    b"H|\\^&|||Afinion 2 Analyzer^^AF20052397|||||||Q|1|20240315101500\r"
    b"P|1||C II^10251234|||||U\r"
    b"O|1||17|^^^CRP|||||||N||||^O||||||||^10230915||F\r"
    b"R|1|^^^CRP|78|mg/L||||F||LAB1||20240315101200\r"
    b"L|1|N\r"
)


def test_control_run_is_recognised_as_qc() -> None:
    (obs,) = PROFILE.observations("afinion-1", parse_message(CONTROL))
    assert obs.is_qc
    assert (obs.control_level, obs.control_lot, obs.patient_id) == ("C II", "10251234", "")
    assert obs.value == "78" and obs.operator_id == "LAB1"
    assert obs.performed_at == datetime(2024, 3, 15, 9, 12, tzinfo=UTC)


def test_out_of_range_and_not_measurable_values() -> None:
    text = CONTROL.replace(b"|Q|1|", b"|P|1|").replace(b"C II^10251234", b"PID9")
    text = text.replace(b"|78|mg/L||||F", b"|<5|mg/L||<||F")
    text = text.replace(b"L|1|N", b"R|2|^^^ACR|--- |mg/mmol||||F||LAB1||20240315101200\rL|1|N")
    low, dashes = PROFILE.observations("afinion-1", parse_message(text))
    assert (low.value, low.value_type, low.abnormal_flags, low.is_qc) == ("<5", "SN", ("<",), False)
    assert (dashes.value, dashes.value_type, dashes.result_status) == ("---", "ST", "X")


def test_decimal_comma_is_read_as_a_decimal_point() -> None:
    text = CONTROL.replace(b"|78|", b"|7,8|")
    (obs,) = PROFILE.observations("afinion-1", parse_message(text))
    assert obs.value == "7.8"


# --- malformed fields --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "number", "component", "text", "field"),
    [
        (3, 4, 0, "5.9 %", "R.4"),
        (3, 4, 0, "", "R.4"),
        (3, 4, 0, "NaN", "R.4"),
        (3, 3, 3, "", "R.3"),
        (3, 7, 0, "HIGH", "R.7"),
        (3, 9, 0, "Z", "R.9"),
        (3, 13, 0, "2024120614061", "R.13"),
        (3, 13, 0, "20241306140615", "R.13"),
        (3, 13, 0, "00010101000000", "R.13"),
        (0, 14, 0, "yesterday", "H.14"),
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


def test_message_without_header_is_refused() -> None:
    records = parse_message(CONTROL)[1:]
    with pytest.raises(RemoteProtocolError) as caught:
        PROFILE.observations("afinion-1", records)
    assert caught.value.field == "H"


# --- fuzzing ---------------------------------------------------------------------------------

test_any_text_in_any_field_maps_or_is_refused = helpers.fuzz_any_text(
    PROFILE, parse_message(CONTROL), components=4
)
test_any_records_map_or_are_refused = helpers.fuzz_any_records(PROFILE)
