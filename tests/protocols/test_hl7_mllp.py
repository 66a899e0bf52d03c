"""MLLP framing: round trips, lenient resynchronisation, size limit, speed, and a clean import."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.protocols.hl7.mllp import CR, FS, VT, MllpDecoder, frame
from gateway.errors import LocalProtocolError, RemoteProtocolError

MSG = b"MSH|^~\\&|A|B|C|D|20240101120000||ORU^R01|1|P|2.5.1\rPID|1||123\r"
MSG2 = b"MSH|^~\\&|A|B|C|D|20240101120001||ORU^R01|2|P|2.5.1\rPID|1||456\r"

payloads = st.binary(min_size=1, max_size=300).map(lambda b: b.replace(VT, b"v").replace(FS, b"f"))


def drain(decoder: MllpDecoder) -> list[bytes]:
    out = []
    while (message := decoder.next_message()) is not None:
        out.append(message)
    return out


def test_frame_wraps_payload() -> None:
    assert frame(MSG) == b"\x0b" + MSG + b"\x1c\x0d"


@pytest.mark.parametrize("bad", [b"MSH|\x0b", b"\x1cMSH"])
def test_frame_refuses_payloads_containing_block_characters(bad: bytes) -> None:
    with pytest.raises(LocalProtocolError) as info:
        frame(bad)
    assert info.value.field == "mllp"


def test_whole_byte_by_byte_and_with_trailing_garbage() -> None:
    whole = MllpDecoder()
    whole.receive_data(frame(MSG))
    assert drain(whole) == [MSG]

    trickle = MllpDecoder()
    got = []
    for byte in frame(MSG):
        trickle.receive_data(bytes([byte]))
        got += drain(trickle)
    assert got == [MSG]
    assert trickle.buffered == 0

    garbage = MllpDecoder()
    garbage.receive_data(frame(MSG) + b"\r\n junk \x00\xff")
    assert drain(garbage) == [MSG]
    assert garbage.discarded == len(b"\r\n junk \x00\xff")
    assert garbage.buffered == 0


def test_several_blocks_in_one_chunk_come_out_in_order() -> None:
    decoder = MllpDecoder()
    decoder.receive_data(frame(MSG) + frame(MSG2) + frame(MSG))
    assert drain(decoder) == [MSG, MSG2, MSG]
    assert decoder.discarded == 0


def test_stray_bytes_before_vt_are_skipped_and_counted() -> None:
    decoder = MllpDecoder()
    decoder.receive_data(b"\r\nnoise")
    assert decoder.next_message() is None
    decoder.receive_data(b"more" + frame(MSG))
    assert drain(decoder) == [MSG]
    assert decoder.discarded == len(b"\r\nnoisemore")


def test_a_new_vt_abandons_an_unfinished_block() -> None:
    decoder = MllpDecoder()
    decoder.receive_data(b"\x0bMSH|half a mess")
    assert decoder.next_message() is None
    decoder.receive_data(frame(MSG2))
    assert drain(decoder) == [MSG2]
    assert decoder.discarded == len(b"\x0bMSH|half a mess")


def test_abandoned_block_and_next_block_in_one_chunk() -> None:
    decoder = MllpDecoder()
    decoder.receive_data(b"\x0bpartial" + frame(MSG))
    assert drain(decoder) == [MSG]
    assert decoder.discarded == len(b"\x0bpartial")


def test_fs_without_cr_still_ends_the_block() -> None:
    decoder = MllpDecoder()
    decoder.receive_data(VT + MSG + FS + VT + MSG2 + FS + CR)
    assert drain(decoder) == [MSG, MSG2]


def test_waits_for_the_byte_after_fs() -> None:
    decoder = MllpDecoder()
    decoder.receive_data(VT + MSG + FS)
    assert decoder.next_message() is None
    decoder.receive_data(CR)
    assert decoder.next_message() == MSG
    assert decoder.discarded == 0


def test_empty_blocks_are_keep_alives() -> None:
    decoder = MllpDecoder()
    decoder.receive_data(frame(b"") + frame(MSG))
    assert drain(decoder) == [MSG]
    assert decoder.discarded == 3


def test_oversize_block_raises_with_field_and_bytes_then_recovers() -> None:
    decoder = MllpDecoder(max_size=100)
    big = b"MSH|" + b"x" * 200
    decoder.receive_data(VT + big[:150])
    with pytest.raises(RemoteProtocolError) as info:
        decoder.next_message()
    assert info.value.field == "mllp"
    assert info.value.data == VT + big[:150]
    assert decoder.buffered == 0
    # the rest of the oversize block is noise; the next block is delivered
    decoder.receive_data(big[150:] + FS + CR + frame(MSG[:90]))
    assert drain(decoder) == [MSG[:90]]


def test_oversize_complete_block_in_one_chunk_raises() -> None:
    decoder = MllpDecoder(max_size=10)
    decoder.receive_data(frame(b"0123456789A") + frame(b"ok"))
    with pytest.raises(RemoteProtocolError):
        decoder.next_message()
    decoder.receive_data(frame(b"ok"))
    assert drain(decoder) == [b"ok"]


def test_block_of_exactly_max_size_is_accepted() -> None:
    decoder = MllpDecoder(max_size=10)
    decoder.receive_data(frame(b"0123456789"))
    assert drain(decoder) == [b"0123456789"]


def test_max_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        MllpDecoder(max_size=0)


def test_decoder_hands_over_an_unfinished_block() -> None:
    decoder = MllpDecoder()
    assert decoder.take_unfinished() is None
    decoder.receive_data(b"junk" + frame(b"A") + VT + b"PARTIAL")
    assert decoder.next_message() == b"A"
    assert decoder.next_message() is None
    assert decoder.take_unfinished() == b"PARTIAL"
    assert decoder.buffered == 0 and decoder.take_unfinished() is None
    decoder.receive_data(frame(b"B") + FS + CR)
    assert decoder.next_message() == b"B"


@settings(max_examples=200, deadline=None)
@given(st.lists(payloads, max_size=8), st.data())
def test_any_split_of_framed_payloads_decodes_to_the_payloads(
    messages: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(frame(m) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    decoder = MllpDecoder()
    got = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        decoder.receive_data(stream[previous:cut])
        previous = cut
        got += drain(decoder)
    assert got == messages
    assert decoder.discarded == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=10))
def test_arbitrary_bytes_only_ever_raise_remote_protocol_error(chunks: list[bytes]) -> None:
    decoder = MllpDecoder(max_size=32)
    for chunk in chunks:
        decoder.receive_data(chunk)
        try:
            for message in drain(decoder):
                assert VT not in message and FS not in message
                assert 0 < len(message) <= 32
        except RemoteProtocolError as exc:
            assert exc.field == "mllp"
        assert decoder.buffered <= 32 + 2 + len(chunk)


def test_throughput_uses_block_search_not_a_byte_loop() -> None:
    body = MSG + b"OBX|1|NM|GLU^Glucose||5.5|mmol/L|||||F\r" * 40  # about 1.7 KB
    stream = frame(body) * 5000  # about 8.5 MB
    decoder = MllpDecoder()
    start = time.perf_counter()
    decoded: list[bytes] = []
    for offset in range(0, len(stream), 65536):
        decoder.receive_data(stream[offset : offset + 65536])
        decoded += drain(decoder)
    elapsed = time.perf_counter() - start
    # every message comes out whole, however the 64 KB chunks cut the frames
    assert len(decoded) == 5000 and set(decoded) == {body} and decoder.buffered == 0
    # a per-byte Python loop needs several seconds for 8.5 MB; block search needs milliseconds
    assert elapsed < 1.0, f"{elapsed:.2f} s for 5000 messages"


def test_a_megabyte_block_fed_byte_by_byte_is_linear() -> None:
    body = b"x" * (256 * 1024)
    decoder = MllpDecoder()
    decoder.receive_data(VT)
    start = time.perf_counter()
    for offset in range(0, len(body), 16):
        decoder.receive_data(body[offset : offset + 16])
        assert decoder.next_message() is None
    decoder.receive_data(FS + CR)
    assert decoder.next_message() == body
    # rescanning the whole buffer on every call would be quadratic: about 2 GB of scanning
    assert time.perf_counter() - start < 2.0
