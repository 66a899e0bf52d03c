"""Sysmex XN-L and XP profiles: corpus messages, simulated round trips, malformed fields, fuzz."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from drivers.analysers.profiles.sysmex_xn import PROFILE, PROFILE_XP, SysmexProfile
from drivers.model import Method, Observation
from drivers.protocols.astm.frames import (
    ETX,
    STX,
    FrameAssembler,
    decode_frame,
    encode_frames,
)
from drivers.protocols.astm.records import (
    DEFAULT_DELIMITERS,
    Delimiters,
    Record,
    encode_message,
    parse_message,
)
from gateway.errors import RemoteProtocolError
from simulators.astm_models import SimSample, model_for
from simulators.astm_models.sysmex_xn import XN_MODEL, XP_MODEL
from tests.drivers import astm_profile_helpers as helpers
from tests.drivers.astm_profile_helpers import CORPUS, FNR, NOW, SUMMER, by_code
from tests.drivers.astm_profile_helpers import needs_corpus_dir as needs_corpus


def single_frame_text(name: str) -> bytes:
    """The record text of a corpus file holding one (merged, over-long) E1381 frame."""
    return decode_frame((CORPUS / name).read_bytes(), expected_number=None, lenient=True).text


def xn550_qc_text() -> bytes:
    """The Ruby-ASTM XN-550 QC capture, repaired.

    Stored with every CR turned into CR LF, which is why no checksum verifies as stored (each is
    off by 0x0A, the LF counted inside the frame). With CR LF read back as CR every frame
    verifies except the final ``L`` frame, which lost its ETX and is rebuilt from its text. The
    ``R|29|^^^^HGB_WDF`` frame repeats the frame number before it (so a frame assembler would
    refuse it); frames are therefore decoded one by one, without number checks.
    """
    data = (CORPUS / "sysmex_xn550_qc__ruby-astm.txt").read_bytes().replace(b"\r\n", b"\r")
    texts: list[bytes] = []
    rebuilt: list[bytes] = []
    for chunk in data.split(bytes([STX]))[1:]:
        frame = bytes([STX]) + chunk
        try:
            texts.append(decode_frame(frame, expected_number=None, lenient=True).text)
        except RemoteProtocolError:
            text = chunk[1:].split(bytes([ETX]))[0]
            texts.append(text if text.endswith(b"\r") else text + b"\r")
            rebuilt.append(text.strip())
    assert rebuilt == [b"L|1|N"]
    return b"".join(texts)


# ---------------------------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------------------------


@needs_corpus
def test_xn550_patient_message_maps_every_reportable_value() -> None:
    records = parse_message(single_frame_text("sysmex_xn550__senaite.astm.txt"), lenient=True)
    observations = PROFILE.observations("xn-1", records)
    obs = by_code(observations)
    assert len(observations) == 23  # R1..R23; IP messages and PNG references are not values
    assert not any(code.startswith(("SCAT_", "DIST_")) or "?" in code for code in obs)
    assert (obs["WBC"].value, obs["WBC"].unit, obs["WBC"].abnormal_flags) == (
        "8.13",
        "10*3/uL",
        ("N",),
    )
    assert (obs["HCT"].value, obs["HCT"].abnormal_flags) == ("22.7", ("L",))
    assert (obs["EO%"].value, obs["EO%"].abnormal_flags) == ("22.1", ("H",))
    assert (obs["PLT"].value, obs["IG#"].value, obs["MPV"].value) == ("99", "0.02", "8.1")
    for o in observations:
        assert o.instrument_id == "xn-1"
        assert o.specimen_id == "27"  # "                    27" in O.4, padding stripped
        assert o.patient_id == "37182"  # P.5
        assert o.instrument_serial == "22723"
        assert o.performed_at == datetime(2024, 6, 27, 11, 54, 7, tzinfo=UTC)  # 13:54 CEST
        assert (o.is_qc, o.result_status, o.method, o.value_type) == (
            False,
            "F",
            Method.MEASURED,
            "NM",
        )
        assert [v for k, v in o.extra if k == "ip_message"] == [
            "Eosinophilia",
            "Anemia",
            "Positive_Diff",
            "Positive_Count",
        ]  # the suspect messages (Blasts/Abn_Lympho?=40 ...) carry no A flag: negative
        assert ("patient_comment", "POST HD") in o.extra
        assert ("analyser_model", "XN-550") in o.extra


@needs_corpus
def test_xn550_qc_message_is_qc_with_lot_and_level() -> None:
    records = parse_message(xn550_qc_text(), lenient=True)
    observations = PROFILE.observations("xn-1", records)
    obs = by_code(observations)
    assert len(observations) == 29  # 28 parameters and the unknown HGB_WDF value, kept
    assert (obs["WBC"].value, obs["PLT"].value, obs["MICROR"].value) == ("16.74", "586", "2.7")
    assert (obs["HGB_WDF"].value, obs["HGB_WDF"].unit) == ("10.28", "")
    for o in observations:
        assert o.is_qc
        assert (o.control_lot, o.control_level) == ("82151403", "high")
        assert o.specimen_id == "QC-82151403"
        assert o.patient_id == ""
        assert o.instrument_serial == "14718"
        assert o.performed_at == datetime(2018, 11, 6, 8, 35, 9, tzinfo=UTC)  # 09:35 CET
        assert ("rack", "1") in o.extra and ("tube_position", "1") in o.extra


@needs_corpus
def test_xp100_message_strips_padding_and_reads_serial_from_sixth_component() -> None:
    records = parse_message(single_frame_text("sysmex_xp100__senaite.astm.txt"), lenient=True)
    assert records[1] == Record("P", ((("1",),),))  # a bare P|1: the XP sends no patient ID
    observations = PROFILE_XP.observations("xp-1", records)
    obs = by_code(observations)
    assert len(observations) == 20
    assert (obs["WBC"].value, obs["RBC"].value, obs["PLT"].value) == ("5.5", "2.87", "170")
    assert (obs["MCHC"].value, obs["MCHC"].abnormal_flags) == ("41.7", ("H",))
    assert (obs["MXD#"].value, obs["PCT"].value) == ("0.6", "0.17")
    for o in observations:
        assert (o.specimen_id, o.patient_id, o.operator_id) == ("113", "", "")
        assert o.instrument_serial == "A7869"
        assert o.result_status == "F"  # R.9 is empty on the XP
        assert o.performed_at == datetime(2024, 7, 23, 15, 24, 52, tzinfo=UTC)
        assert not o.is_qc


@needs_corpus
def test_both_profiles_decode_both_series() -> None:
    text = single_frame_text("sysmex_xp100__senaite.astm.txt")
    records = parse_message(text, lenient=True)
    assert PROFILE.observations("i", records) == PROFILE_XP.observations("i", records)


# ---------------------------------------------------------------------------------------------
# Simulated messages round-trip through the codec and the mapping
# ---------------------------------------------------------------------------------------------

ODD_DELIMITERS = Delimiters(field="!", repeat="~", component="^", escape="\\")


@pytest.mark.parametrize("profile", [PROFILE, PROFILE_XP], ids=lambda p: p.key)
@pytest.mark.parametrize("qc", [False, True], ids=["patient", "qc"])
def test_simulated_message_round_trips(profile: SysmexProfile, qc: bool) -> None:
    for seed in range(40):
        rng = random.Random(seed)
        now = SUMMER if seed % 2 else NOW
        sample = model_for(profile).sample(
            rng, operator_id="OLANOR", qc=qc, patient_id=FNR, now=now
        )
        delimiters = ODD_DELIMITERS if seed % 3 == 0 else DEFAULT_DELIMITERS
        raw = encode_message(model_for(profile).message(sample, delimiters), delimiters)
        # through E1381 framing as well: the XN message is far longer than one frame
        assembler = FrameAssembler()
        joined = [m for f in encode_frames(raw) if (m := assembler.feed(f)) is not None]
        assert joined == [raw]
        observations = profile.observations("inst", parse_message(raw))
        assert [(o.test_code, o.value, o.unit) for o in observations] == list(sample.values)
        assert_matches_sample(observations, sample)


def assert_matches_sample(observations: tuple[Observation, ...], sample: SimSample) -> None:
    for o in observations:
        assert o.specimen_id == sample.specimen_id
        assert o.patient_id == sample.patient_id
        assert o.operator_id == sample.operator_id
        assert o.performed_at == sample.performed_at
        assert o.instrument_serial == sample.instrument_serial
        assert (o.is_qc, o.control_lot, o.control_level) == (
            sample.is_qc,
            sample.control_lot,
            sample.control_level,
        )
        assert (o.result_status, o.method, o.value_type) == ("F", Method.MEASURED, "NM")


def test_simulated_patient_has_id_on_xn_and_none_on_xp() -> None:
    xn = XN_MODEL.sample(random.Random(1), operator_id="A", qc=False, patient_id=FNR, now=NOW)
    xp = XP_MODEL.sample(random.Random(1), operator_id="A", qc=False, patient_id=FNR, now=NOW)
    assert xn.patient_id == FNR
    assert xp.patient_id == ""  # the XP cannot send a patient ID
    assert encode_message(XP_MODEL.message(xp)).split(b"\r")[1] == b"P|1"


@pytest.mark.parametrize("profile", [PROFILE, PROFILE_XP], ids=lambda p: p.key)
def test_simulated_cbc_is_plausible_and_consistent(profile: SysmexProfile) -> None:
    percent_codes = {
        "astm_sysmex_xn": ("NEUT%", "LYMPH%", "MONO%", "EO%", "BASO%"),
        "astm_sysmex_xp": ("LYM%", "MXD%", "NEUT%"),
    }[profile.key]
    for seed in range(50):
        sample = model_for(profile).sample(
            random.Random(seed), operator_id="A", qc=False, patient_id=FNR, now=NOW
        )
        v = {code: float(value) for code, value, _unit in sample.values}
        assert 1.0 < v["WBC"] < 20 and 2.5 < v["RBC"] < 7 and 50 < v["PLT"] < 600
        assert 7 < v["HGB"] < 25 and 20 < v["HCT"] < 65 and 70 < v["MCV"] < 110
        # the indices agree with the counts (within the rounding of what is sent)
        assert v["MCV"] == pytest.approx(v["HCT"] / v["RBC"] * 10, rel=0.02)
        assert v["MCHC"] == pytest.approx(v["HGB"] / v["HCT"] * 100, rel=0.02)
        assert sum(v[c] for c in percent_codes) == pytest.approx(100, abs=0.5)
        assert dict((c, u) for c, _v, u in sample.values)["WBC"] == "10*3/uL"


@pytest.mark.parametrize("profile", [PROFILE, PROFILE_XP], ids=lambda p: p.key)
def test_simulated_qc_covers_the_three_levels(profile: SysmexProfile) -> None:
    samples = [
        model_for(profile).sample(
            random.Random(s), operator_id="A", qc=True, patient_id=FNR, now=NOW
        )
        for s in range(30)
    ]
    assert {s.control_level for s in samples} == {"low", "normal", "high"}
    for s in samples:
        assert s.specimen_id == f"QC-{s.control_lot}" and s.patient_id == ""
        wbc = float(dict((c, v) for c, v, _u in s.values)["WBC"])
        assert {"low": (2, 4), "normal": (6, 8), "high": (15, 19)}[s.control_level][0] < wbc
        assert wbc < {"low": (2, 4), "normal": (6, 8), "high": (15, 19)}[s.control_level][1]


# ---------------------------------------------------------------------------------------------
# Field-level behaviour and malformed input
# ---------------------------------------------------------------------------------------------


def message(*lines: str) -> list[Record]:
    head = "H|\\^&|||    XN-550^00-24^22723^^^^BD634545||||||||E1394-97\r"
    order = "O|1||^^          4711^M|^^^^WBC|||||||N||||||||||||||F\r"
    body = "".join(line + "\r" for line in lines)
    return parse_message(head + "P|1|||P-1\r" + order + body + "L|1|N\r", lenient=True)


def result(
    r3: str = "^^^^WBC^1", r4: str = "8.13", r7: str = "N", r13: str = "20240627135407"
) -> str:
    return f"R|1|{r3}|{r4}|10*3/uL||{r7}||F||OP1||{r13}"


def test_decimal_comma_is_read_as_a_point_and_the_sent_text_kept() -> None:
    (obs,) = PROFILE.observations("i", message(result(r4="8,13")))
    assert (obs.value, obs.value_type) == ("8.13", "NM")
    assert ("value_text", "8,13") in obs.extra


def test_analysis_error_value_is_kept_as_text() -> None:
    (obs,) = PROFILE.observations("i", message(result(r4="----", r7="A")))
    assert (obs.value, obs.value_type, obs.abnormal_flags) == ("----", "ST", ("A",))


def test_dilution_and_extended_order_are_kept() -> None:
    (obs,) = PROFILE.observations("i", message(result(r3="^^^^WBC^5^^^^W")))
    assert obs.test_code == "WBC"
    assert ("dilution", "5") in obs.extra and ("extended_order", "W") in obs.extra


def test_research_items_images_and_negative_suspect_messages_are_skipped() -> None:
    records = message(
        result(),
        "R|2|^^^^NEUT#&^1|4.1|10*3/uL||N||F||||20240627135407",
        "R|3|^^^^IPF_RESEARCH^1|2.2|%||N||F||||20240627135407",
        "R|4|^^^^SCAT_WDF|PNG&R&20240628&R&x.PNG|||N||F||||20240627135407",
        "R|5|^^^^Left_Shift?|0|||||F||||20240627135407",
        "R|6|^^^^Blasts/Abn_Lympho?|120|||A||F||||20240627135407",
        "R|7|^^^^ACTION_MESSAGE_Delta||||A||F||||20240627135407",
    )
    (obs,) = PROFILE.observations("i", records)
    assert obs.test_code == "WBC"
    assert [v for k, v in obs.extra if k == "ip_message"] == [
        "Blasts/Abn_Lympho?=120",
        "ACTION_MESSAGE_Delta",
    ]


def test_comment_after_a_result_belongs_to_that_result() -> None:
    records = message(result(), "C|1||Rerun^by rule|I")
    (obs,) = PROFILE.observations("i", records)
    assert obs.comment == "Rerun by rule"
    assert obs.operator_id == "OP1" and obs.patient_id == "P-1" and obs.specimen_id == "4711"


def test_two_orders_in_one_message_keep_their_own_samples() -> None:
    text = (
        "H|\\^&|||XP-300^00-16^^^^A1573^AP807129||||||||E1394-97\rP|1\r"
        "O|1||^^     1001^M|^^^^WBC|||||||N||||||||||||||F\r"
        "R|1|^^^^WBC^1|  4.8|10*3/uL||N||||ANNE           ||20231115103722\r"
        "O|2||^^     1002^M|^^^^WBC|||||||N||||||||||||||F\r"
        "R|1|^^^^WBC^1| 12.1|10*3/uL||H||||ANNE           ||20231115103722\rL|1|N\r"
    )
    first, second = PROFILE_XP.observations("i", parse_message(text))
    assert (first.specimen_id, first.value, second.specimen_id, second.value) == (
        "1001",
        "4.8",
        "1002",
        "12.1",
    )
    assert first.operator_id == "ANNE" and first.instrument_serial == "A1573"


@pytest.mark.parametrize(
    ("records", "field", "offending"),
    [
        (message(result(r13="2024-06-27")), "R.13", b"2024-06-27"),
        (message(result(r13="20241327135407")), "R.13", b"20241327135407"),
        (message(result(r13="00010101")), "R.13", b"00010101"),  # no UTC for year 1 in Oslo
        (message(result(r3="^^^^^1")), "R.3", None),
        (message(result(r3="")), "R.3", None),
        (
            parse_message("H|\\^&\rR|1|^^^^WBC^1|8.1|||N||F||||20240627135407\rL|1\r"),
            "R",
            None,
        ),
        (parse_message("P|1\rO|1\r", lenient=True), "record type", b"P"),
    ],
)
def test_malformed_fields_raise_remote_protocol_error_naming_the_field(
    records: list[Record], field: str, offending: bytes | None
) -> None:
    helpers.assert_refused(PROFILE, records, field, offending)


def test_empty_message_has_no_observations() -> None:
    assert PROFILE.observations("i", []) == ()
    assert PROFILE.observations("i", parse_message("H|\\^&\rQ|1|^4711\rL|1\r")) == ()


# ---------------------------------------------------------------------------------------------
# Fuzz: arbitrary field text either maps or raises RemoteProtocolError
# ---------------------------------------------------------------------------------------------

test_arbitrary_field_text_maps_or_raises_remote_protocol_error = helpers.fuzz_field_repeats(
    PROFILE, seed=7
)
test_arbitrary_message_text_maps_or_raises_remote_protocol_error = helpers.fuzz_message_text(
    (PROFILE, PROFILE_XP), "HPORCML|\\^&\r0123456789 AQ-.:?W"
)
