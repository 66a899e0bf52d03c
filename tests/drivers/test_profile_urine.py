"""CLINITEK Status+ urine profile: golden message, visual readings, round trips, QC, fuzzing."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from drivers.analysers.profiles.clinitek_status import PROFILE, VISUAL_CODES
from drivers.model import Method, Observation
from drivers.protocols.astm.records import (
    DEFAULT_DELIMITERS,
    Delimiters,
    Record,
    encode_message,
    parse_message,
)
from gateway.errors import LocalProtocolError
from simulators.astm_models import SimSample
from simulators.astm_models.clinitek_status import MODEL
from tests.drivers import astm_profile_helpers as helpers
from tests.drivers.astm_profile_helpers import with_component

#: the layout the profile's docstring documents, with a µmol/L unit in latin-1
GOLDEN = (
    b"H|\\^&|||CLINITEK Status+^SUA-2014r74-4^CS012345|||||||P|1|20240601140500\r"
    b"P|1|01017012345\r"
    b"O|1|0042||^^^MULTISTIX 10 SG|||||||N||||||||||||||F\r"
    b"R|1|^^^GLU|Neg|||||F||SYKEPL1||20240601140000\r"
    b"R|2|^^^SG|>=1.030|||||F||SYKEPL1||20240601140000\r"
    b"R|3|^^^pH|6.5|||||F||SYKEPL1||20240601140000\r"
    b"R|4|^^^URO|33|\xb5mol/L||A||F||SYKEPL1||20240601140000\r"
    b"R|5|^^^LEU|2+|||A||F||SYKEPL1||20240601140000\r"
    b"R|6|^^^COL|Amber|||||F||SYKEPL1||20240601140000\r"
    b"R|7|^^^CLA|Cloudy|||A||F||SYKEPL1||20240601140000\r"
    b"L|1|N\r"
)


def golden_records() -> list[Record]:
    return parse_message(GOLDEN, lenient=PROFILE.lenient, encoding=PROFILE.encoding)


def round_trip(sample: SimSample, delimiters: Delimiters = DEFAULT_DELIMITERS) -> list[Observation]:
    return helpers.round_trip(PROFILE, "urin-1", sample, delimiters)


# --- the documented message -------------------------------------------------------------------


def test_golden_message_maps_to_pads_and_visual_readings() -> None:
    glucose = Observation(
        instrument_id="urin-1",
        test_code="GLU",
        value="Neg",
        value_type="ST",
        method=Method.MEASURED,
        # R.13 20240601140000 is Oslo summer time (UTC+2)
        performed_at=datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
        operator_id="SYKEPL1",
        specimen_id="0042",
        patient_id="01017012345",
        result_status="F",
        instrument_serial="CS012345",
        test_name="Glucose, urine strip",
        is_qc=False,
    )
    assert PROFILE.observations("urin-1", golden_records()) == (
        glucose,
        replace(
            glucose,
            test_code="SG",
            value=">=1.030",
            value_type="SN",
            test_name="Specific gravity, urine strip",
        ),
        replace(glucose, test_code="pH", value="6.5", value_type="NM", test_name="pH, urine strip"),
        replace(
            glucose,
            test_code="URO",
            value="33",
            value_type="NM",
            unit="µmol/L",
            abnormal_flags=("A",),
            test_name="Urobilinogen, urine strip",
        ),
        replace(
            glucose,
            test_code="LEU",
            value="2+",
            abnormal_flags=("A",),
            test_name="Leukocytes, urine strip",
        ),
        replace(
            glucose,
            test_code="COL",
            value="Amber",
            method=Method.VISUAL,
            test_name="Colour, urine (visual)",
        ),
        replace(
            glucose,
            test_code="CLA",
            value="Cloudy",
            abnormal_flags=("A",),
            method=Method.VISUAL,
            test_name="Clarity, urine (visual)",
        ),
    )


def test_simulated_message_reproduces_the_documented_layout() -> None:
    records = golden_records()
    sample = SimSample(
        specimen_id="0042",
        patient_id="01017012345",
        operator_id="SYKEPL1",
        performed_at=datetime(2024, 6, 1, 12, 0, tzinfo=UTC),
        values=tuple((r.value(3, 0, 3), r.value(4), r.value(5)) for r in records if r.type == "R"),
        instrument_serial="CS012345",
        visual_codes=("COL", "CLA"),
    )
    simulated = MODEL.message(sample)
    simulated[0] = with_component(simulated[0], 14, records[0].value(14))  # transmission time
    assert encode_message(simulated, encoding=PROFILE.encoding) == GOLDEN


def test_pads_cannot_be_simulated_as_read_by_eye() -> None:
    sample = MODEL.sample(
        random.Random(1), operator_id="1", qc=False, patient_id="p", now=datetime.now(UTC)
    )
    with pytest.raises(LocalProtocolError):
        MODEL.message(replace(sample, visual_codes=("GLU",)))


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("qc", [False, True], ids=["patient", "control"])
def test_simulated_samples_round_trip(qc: bool) -> None:
    start = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
    visual_seen = 0
    for seed in range(150):
        rng = random.Random(seed)
        now = start + timedelta(days=seed * 2, seconds=seed * 13, microseconds=5)
        sample = MODEL.sample(
            rng, operator_id=f"op{seed}", qc=qc, patient_id="31129912345", now=now
        )
        delimiters = Delimiters("|", "`", "^", "&") if seed % 2 else DEFAULT_DELIMITERS
        found = round_trip(sample, delimiters)
        assert [(o.test_code, o.value, o.unit) for o in found] == list(sample.values)
        for obs in found:
            assert obs.performed_at == now.replace(microsecond=0)
            assert obs.operator_id == f"op{seed}"
            assert obs.specimen_id == sample.specimen_id
            assert obs.instrument_serial == sample.instrument_serial
            visual = obs.test_code in sample.visual_codes
            visual_seen += visual
            assert obs.method is (Method.VISUAL if visual else Method.MEASURED)
            assert obs.is_qc is qc
            assert (obs.patient_id, obs.control_level, obs.control_lot) == (
                ("", sample.control_level, sample.control_lot) if qc else ("31129912345", "", "")
            )
    assert (visual_seen > 0) is not qc  # patients get colour and clarity by eye, controls not


def test_negative_control_is_unflagged_and_positive_control_is_flagged() -> None:
    flagged: dict[str, int] = {}
    for seed in range(30):
        sample = MODEL.sample(
            random.Random(seed), operator_id="1", qc=True, patient_id="", now=datetime.now(UTC)
        )
        found = round_trip(sample)
        assert all(o.is_qc for o in found)
        flagged[sample.control_level] = sum(bool(o.abnormal_flags) for o in found)
    assert flagged["Negative"] == 0 and flagged["Positive"] >= 6


# --- controls ----------------------------------------------------------------------------------


def test_control_strip_is_recognised_as_qc() -> None:
    text = GOLDEN.replace(b"P|1|01017012345", b"P|1|Positive^A23B45").replace(b"|N|||", b"|Q|||")
    found = PROFILE.observations("urin-1", parse_message(text, encoding=PROFILE.encoding))
    assert len(found) == 7
    for obs in found:
        assert obs.is_qc
        assert (obs.control_level, obs.control_lot, obs.patient_id) == ("Positive", "A23B45", "")


# --- malformed fields --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "number", "component", "text", "field"),
    [
        (3, 4, 0, "", "R.4"),
        (3, 4, 0, "Neg!", "R.4"),
        (3, 4, 0, ">=", "R.4"),
        (3, 3, 3, "", "R.3"),
        (3, 7, 0, "POS", "R.7"),
        (3, 9, 0, "X", "R.9"),
        (3, 13, 0, "2024060114", "R.13"),
        (2, 12, 0, "A", "O.12"),
        (0, 14, 0, "99999999999999", "H.14"),
    ],
)
def test_malformed_field_is_named(
    index: int, number: int, component: int, text: str, field: str
) -> None:
    helpers.assert_refused_quietly(
        PROFILE, helpers.with_text(golden_records(), index, number, text, component), field, text
    )


# --- fuzzing ---------------------------------------------------------------------------------


def _methods_follow_the_codes(found: tuple[Observation, ...]) -> None:
    assert all(o.method in (Method.MEASURED, Method.VISUAL) for o in found)
    assert all((o.method is Method.VISUAL) == (o.test_code in VISUAL_CODES) for o in found)


test_any_text_in_any_field_maps_or_is_refused = helpers.fuzz_any_text(
    PROFILE, golden_records(), components=5, check=_methods_follow_the_codes
)
test_any_records_map_or_are_refused = helpers.fuzz_any_records(
    PROFILE, check=_methods_follow_the_codes
)
