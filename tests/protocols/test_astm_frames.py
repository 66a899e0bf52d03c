"""ASTM E1381 framing: checksum, splitting at 247 bytes, number wrap, corpus frames, fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.corpus import corpus_dir
from drivers.protocols.astm.frames import (
    ETB,
    ETX,
    MAX_FRAME,
    RESTRICTED,
    DecodedFrame,
    FrameAssembler,
    build_frame,
    checksum,
    decode_frame,
    encode_frames,
)
from gateway.errors import LocalProtocolError, RemoteProtocolError

CORPUS = corpus_dir("astm")
needs_corpus = pytest.mark.corpus(CORPUS)


def split_stream(raw: bytes) -> list[bytes]:
    """Cut a captured byte stream at each STX, dropping ENQ/EOT/ACK bytes between frames."""
    return [b"\x02" + part.rstrip(b"\x04\x05\x06") for part in raw.split(b"\x02")[1:]]


def corpus_frames(name: str) -> list[bytes]:
    return split_stream((CORPUS / name).read_bytes())


def assemble(frames: list[bytes], *, lenient: bool = False) -> list[bytes]:
    assembler = FrameAssembler(lenient=lenient)
    return [m for f in frames if (m := assembler.feed(f)) is not None]


# --- checksum -----------------------------------------------------------------------------------


def test_checksum_of_a_known_frame() -> None:
    # The Beckman Access 2 sniffer log shows the frame "[STX]5L|1|F[CR][ETX]00[CR][LF]".
    # By hand: '5'=0x35=53, 'L'=0x4C=76, '|'=124, '1'=49, '|'=124, 'F'=70, CR=13, ETX=3;
    # 53+76+124+49+124+70+13+3 = 512, and 512 mod 256 = 0, so the checksum is "00".
    assert checksum(b"5L|1|F\r\x03") == b"00"
    # And "1L|1|N\r" + ETX: 49+76+124+49+124+78+13+3 = 516, 516 - 512 = 4, so "04".
    assert checksum(b"1L|1|N\r\x03") == b"04"
    assert decode_frame(b"\x025L|1|F\r\x0300\r\n", expected_number=5) == DecodedFrame(
        5, b"L|1|F\r", True
    )


def test_checksum_is_two_uppercase_hex_chars() -> None:
    assert checksum(b"") == b"00"
    assert checksum(bytes([0xFF, 0xFF])) == b"FE"  # 510 mod 256 = 254
    assert checksum(b"\xab") == b"AB"


@given(st.binary(max_size=300))
def test_checksum_matches_sum_mod_256(data: bytes) -> None:
    result = checksum(data)
    assert len(result) == 2 and result == result.upper()
    assert int(result, 16) == sum(data) % 256


# --- encoding -----------------------------------------------------------------------------------


def test_short_message_is_one_etx_frame() -> None:
    (frame,) = encode_frames(b"H|\\^&\rL|1|N\r")
    body = b"1H|\\^&\rL|1|N\r\x03"
    assert frame == b"\x02" + body + checksum(body) + b"\r\n"


def test_split_at_247_bytes_etb_then_etx() -> None:
    message = bytes(range(0x20, 0x7F)) * 6  # 570 bytes, no restricted characters
    frames = encode_frames(message)
    assert [len(f) for f in frames] == [MAX_FRAME, MAX_FRAME, 570 - 480 + 7]
    assert [f[-5] for f in frames] == [ETB, ETB, ETX]
    assert [decode_frame(f, expected_number=n).text for n, f in enumerate(frames, 1)] == [
        message[:240],
        message[240:480],
        message[480:],
    ]


def test_exactly_240_bytes_is_one_full_frame() -> None:
    (frame,) = encode_frames(b"x" * 240)
    assert len(frame) == MAX_FRAME and frame[-5] == ETX


def test_frame_numbers_wrap_modulo_8() -> None:
    frames = encode_frames(b"y" * 10, max_text=1)
    assert [f[1] - 0x30 for f in frames] == [1, 2, 3, 4, 5, 6, 7, 0, 1, 2]
    assert assemble(frames) == [b"y" * 10]
    assert [f[1] - 0x30 for f in encode_frames(b"ab", max_text=1, first_number=7)] == [7, 0]


@pytest.mark.parametrize("bad", [b"", b"a\nb", b"a\x02b", b"a\x17", b"\x03"])
def test_encode_refuses_what_cannot_be_framed(bad: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        encode_frames(bad)


@pytest.mark.parametrize("max_text", [0, 241])
def test_encode_refuses_bad_max_text(max_text: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode_frames(b"x", max_text=max_text)


allowed = st.binary(min_size=1, max_size=800).map(
    lambda b: bytes(c for c in b if c not in RESTRICTED) or b"x"
)


@given(allowed, st.integers(1, 240), st.integers(0, 7))
def test_round_trip_through_frames(message: bytes, max_text: int, first: int) -> None:
    frames = encode_frames(message, max_text=max_text, first_number=first)
    assert all(len(f) <= MAX_FRAME for f in frames)
    assert all(f[-5] == ETB for f in frames[:-1]) and frames[-1][-5] == ETX
    assembler = FrameAssembler(first_number=first)
    results = [assembler.feed(f) for f in frames]
    assert results[:-1] == [None] * (len(frames) - 1)
    assert results[-1] == message
    assert not assembler.in_message


# --- decoding -----------------------------------------------------------------------------------

GOOD = build_frame(1, b"L|1|N\r", final=True)


def test_bad_checksum_raises() -> None:
    bad = GOOD[:-4] + (b"00" if GOOD[-4:-2] != b"00" else b"01") + b"\r\n"
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(bad, expected_number=1)
    assert info.value.field == "checksum" and info.value.data == bad
    with pytest.raises(RemoteProtocolError):
        decode_frame(bad, expected_number=1, lenient=True)  # a wrong checksum is never accepted


def test_lowercase_checksum_is_strict_error_lenient_ok() -> None:
    frame = build_frame(2, b"P|1\r", final=True)
    lower = frame[:-4] + frame[-4:-2].lower() + b"\r\n"
    if lower != frame:
        with pytest.raises(RemoteProtocolError):
            decode_frame(lower, expected_number=2)
    assert decode_frame(lower, expected_number=2, lenient=True).text == b"P|1\r"


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (GOOD[1:], "frame"),  # no STX
        (GOOD[:-2], "frame"),  # no CR LF
        (GOOD + b"garbage", "frame"),  # trailing garbage
        (GOOD.replace(b"\x03", b"\x04"), "frame"),  # no terminator
        (b"\x028L|1|N\r\x03" + checksum(b"8L|1|N\r\x03") + b"\r\n", "frame number"),
        (
            b"\x02" + b"1" + b"x" * 241 + b"\x03" + checksum(b"1" + b"x" * 241 + b"\x03") + b"\r\n",
            "frame",
        ),  # 248 bytes
        (b"\x02\r\n", "frame"),
        (b"", "frame"),
    ],
)
def test_malformed_frames_name_the_field(frame: bytes, field: str) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(frame, expected_number=None)
    assert info.value.field == field


def test_unexpected_frame_number() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(GOOD, expected_number=2)
    assert info.value.field == "frame number"
    assert decode_frame(GOOD, expected_number=9).number == 1  # compared modulo 8


def test_lenient_accepts_missing_checksum_lf_only_and_long_frames() -> None:
    assert decode_frame(b"\x021L|1|N\r\x03\r\n", expected_number=1, lenient=True).final
    lf_only = GOOD[:-2] + b"\n"
    assert decode_frame(lf_only, expected_number=1, lenient=True).text == b"L|1|N\r"
    long_text = b"R|1|" + b"9" * 400 + b"\r"
    long_frame = build_frame(3, long_text, final=False)
    assert decode_frame(long_frame, expected_number=3, lenient=True) == DecodedFrame(
        3, long_text, False
    )
    for frame in (b"\x021L|1|N\r\x03\r\n", lf_only, long_frame):
        with pytest.raises(RemoteProtocolError):
            decode_frame(frame, expected_number=None)


@given(st.binary(max_size=300), st.one_of(st.none(), st.integers(0, 7)), st.booleans())
def test_any_bytes_decode_or_raise_remote_error(
    data: bytes, number: int | None, lenient: bool
) -> None:
    try:
        decoded = decode_frame(data, expected_number=number, lenient=lenient)
    except RemoteProtocolError:
        return
    assert 0 <= decoded.number <= 7


@given(st.lists(st.binary(max_size=60).map(lambda b: b"\x02" + b), max_size=12), st.booleans())
def test_assembler_fuzz(frames: list[bytes], lenient: bool) -> None:
    assembler = FrameAssembler(lenient=lenient)
    for frame in frames:
        try:
            result = assembler.feed(frame)
        except RemoteProtocolError:
            continue
        assert result is None or isinstance(result, bytes)


# --- assembler ----------------------------------------------------------------------------------


def test_assembler_ignores_a_repeated_frame_and_keeps_state_on_error() -> None:
    first, second = encode_frames(b"a" * 300)
    assembler = FrameAssembler()
    assert assembler.feed(first) is None
    assert assembler.feed(first) is None  # our ACK was lost; the sender repeated the frame
    with pytest.raises(RemoteProtocolError):
        assembler.feed(second[:-4] + b"ZZ\r\n")
    assert assembler.expected_number == 2 and assembler.in_message
    assert assembler.feed(second) == b"a" * 300
    assert assembler.expected_number == 3  # numbers run on through the transfer phase
    assembler.reset()
    assert assembler.expected_number == 1 and not assembler.in_message


def test_assembler_limits_message_size() -> None:
    assembler = FrameAssembler(max_message=100)
    frames = encode_frames(b"b" * 150, max_text=60)
    assembler.feed(frames[0])
    with pytest.raises(RemoteProtocolError) as info:
        assembler.feed(frames[1])
    assert info.value.field == "message"


# --- corpus -------------------------------------------------------------------------------------


@needs_corpus
def test_roche_e411_multiframe_decodes_and_reencodes_identically() -> None:
    frames = corpus_frames("roche_cobas_e411_multiframe__ruby-astm.raw.bin")
    assert [len(f) for f in frames] == [247, 247, 49]
    decoded = [decode_frame(f, expected_number=n) for n, f in enumerate(frames, 1)]
    assert [d.final for d in decoded] == [False, False, True]
    (message,) = assemble(frames)
    assert message.startswith(b"H|\\^&|||cobas-e411^1|") and message.endswith(b"L|1|N\r")
    assert encode_frames(message) == frames  # the analyser split exactly as we do


@needs_corpus
@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("stago_sta_satellite_max__ruby-astm.raw.bin", 31),
        ("roche_cobas_e411_d10error__ruby-astm.raw.bin", 1),
    ],
)
def test_raw_captures_decode_strictly(name: str, count: int) -> None:
    frames = corpus_frames(name)
    assert len(frames) == count
    messages = assemble(frames)
    assert messages and messages[0].startswith(b"H|")
    assert b"".join(messages).endswith(b"\r")


@needs_corpus
@pytest.mark.parametrize(
    ("name", "frame_count"),
    [
        ("sysmex_xn550__senaite.astm.txt", 1),  # 2.6 kB, ends ETX cs CR
        ("abbott_afinion2__senaite.astm.txt", 1),  # ends ETX cs CR
        ("roche_cobas_c111__senaite.astm.txt", 7),  # ETB cs LF
        ("cepheid_genexpert__senaite.astm.txt", 1),
    ],
)
def test_quirky_senaite_captures_need_lenient(name: str, frame_count: int) -> None:
    frames = corpus_frames(name)
    assert len(frames) == frame_count
    with pytest.raises(RemoteProtocolError):
        assemble(frames)
    (message,) = assemble(frames, lenient=True)
    assert message.startswith(b"H|") and message.rstrip(b"\r").split(b"\r")[-1].startswith(b"L|")


@needs_corpus
def test_placeholder_checksums_are_rejected() -> None:
    # The Beckman README mock writes every checksum as "20"; its "2Q|1|^E2DD9F||ALL|...O" frame
    # really sums to a different value, so even lenient decoding must refuse it.
    text = (CORPUS / "beckman_access_dxi_query_result__mock.symbolic.txt").read_text("latin-1")
    line = next(ln for ln in text.splitlines() if ln.startswith("<STX>2Q|"))
    for token, byte in (("<STX>", b"\x02"), ("<CR>", b"\r"), ("<ETX>", b"\x03"), ("<LF>", b"\n")):
        line = line.replace(token, byte.decode("latin-1"))
    frame = line.encode("latin-1")
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(frame, expected_number=2, lenient=True)
    assert info.value.field == "checksum"


# --- leniency and properties added with the corpus work -----------------------------------------


def test_restricted_search_matches_the_restricted_set() -> None:
    # decode_frame and encode_frames search with a byte class; it must be exactly RESTRICTED.
    for byte in range(256):
        message = b"ab" + bytes([byte]) + b"c"
        refused = True
        try:
            encode_frames(message)
        except LocalProtocolError:
            pass
        else:
            refused = False
        assert refused is (byte in RESTRICTED), hex(byte)


def test_frame_without_number_or_checksum_is_lenient_only() -> None:
    # Snibe Maglumi: "[STX]H|\^&||PSWD|...L|1|N[CR][ETX]", no FN, no checksum, no CR LF.
    frame = b"\x02H|\\^&||PSWD\rL|1|N\r\x03"
    decoded = decode_frame(frame, expected_number=3, lenient=True)
    assert decoded == DecodedFrame(3, b"H|\\^&||PSWD\rL|1|N\r", True, numbered=False)
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(frame + b"00\r\n", expected_number=None)
    assert info.value.field == "frame number"
    # With a checksum it must be right: it covers the text and the terminator.
    body = frame[1:]
    assert decode_frame(frame + checksum(body), expected_number=None, lenient=True).text
    with pytest.raises(RemoteProtocolError):
        decode_frame(frame + b"00", expected_number=None, lenient=True)
    # A leading digit is a frame number, never text: '8' and '9' are refused even lenient.
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(b"\x029R|1\r\x03", expected_number=None, lenient=True)
    assert info.value.field == "frame number"


def test_lenient_tolerates_lf_in_text_strict_does_not() -> None:
    frame = build_frame(1, b"H|\\^&\r\nL|1\r", final=True)  # built without the LF check
    assert decode_frame(frame, expected_number=1, lenient=True).text == b"H|\\^&\r\nL|1\r"
    with pytest.raises(RemoteProtocolError) as info:
        decode_frame(frame, expected_number=1)
    assert "restricted" in str(info.value)
    with pytest.raises(RemoteProtocolError):  # STX/ETX/ETB/EOT/ENQ stay refused, even lenient
        decode_frame(build_frame(1, b"a\x05b", final=True), expected_number=1, lenient=True)


def test_lenient_assembler_follows_out_of_sequence_numbers_and_says_so() -> None:
    strict, lenient = FrameAssembler(), FrameAssembler(lenient=True)
    first = build_frame(1, b"H|\\^&\r", final=True)
    restarted = build_frame(1, b"L|1|N\r", final=True)  # numbered 1 again, not 2
    assert strict.feed(first) == lenient.feed(first) == b"H|\\^&\r"
    assert lenient.notice is None
    with pytest.raises(RemoteProtocolError):
        strict.feed(restarted)
    assert lenient.feed(restarted) == b"L|1|N\r"
    assert lenient.notice == "frame number 1, expected 2; accepted"
    assert lenient.expected_number == 2  # the count follows the sender
    assert lenient.feed(restarted) is None and lenient.notice is None  # a repeat, by its bytes
    unnumbered = b"\x02P|1\r\x03"
    assert lenient.feed(unnumbered) == b"P|1\r" and lenient.expected_number == 2


texts = st.binary(max_size=300)


@given(st.integers(0, 7), texts, st.booleans())
def test_decode_frame_of_build_frame_round_trips(number: int, text: bytes, final: bool) -> None:
    frame = build_frame(number, text, final=final)
    lenient_ok = not any(b in (0x02, 0x03, 0x04, 0x05, 0x17) for b in text)
    strict_ok = lenient_ok and len(frame) <= MAX_FRAME and not any(b in RESTRICTED for b in text)
    expected = DecodedFrame(number, text, final)
    for lenient, ok in ((False, strict_ok), (True, lenient_ok)):
        if ok:
            assert decode_frame(frame, expected_number=number, lenient=lenient) == expected
        else:
            with pytest.raises(RemoteProtocolError):
                decode_frame(frame, expected_number=number, lenient=lenient)
