"""ASTM E1381 link state machine: both roles wired in memory, every timer by `now`, fuzzing."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.protocols.astm.events import (
    Event,
    LinkIdle,
    MessageReceived,
    MessageSent,
    ProtocolViolation,
    SendFailed,
)
from drivers.protocols.astm.frames import ACK, ENQ, EOT, NAK, STX, build_frame, encode_frames
from drivers.protocols.astm.link import (
    BUSY_RETRY,
    FRAME_TAIL_WAIT,
    HOST_CONTENTION_HOLD,
    INSTRUMENT_CONTENTION_RETRY,
    MAX_ATTEMPTS,
    MAX_FRAME_BUFFER,
    RECEIVE_TIMEOUT,
    REPLY_TIMEOUT,
    Link,
    State,
)
from gateway.errors import LocalProtocolError

A, E, K, N = bytes([ACK]), bytes([ENQ]), bytes([EOT]), bytes([NAK])
#: A realistic multi-record message of more than 247 bytes, so it needs several frames.
LONG = (
    b"H|\\^&|||Afinion2^1.0|||||||P|1\r"
    + b"".join(b"R|%d|^^^CRP|%d|mg/L||N||F||oper1||20260101120000\r" % (i, i * 3) for i in range(8))
    + b"L|1|N\r"
)


def events(link: Link) -> list[Event]:
    out: list[Event] = []
    while (event := link.next_event()) is not None:
        out.append(event)
    return out


def pump(a: Link, b: Link, now: float) -> None:
    """Move bytes both ways until neither side has anything to say."""
    for _ in range(10_000):
        ab, ba = a.data_to_send(), b.data_to_send()
        if not ab and not ba:
            return
        b.receive_data(ab, now)
        a.receive_data(ba, now)
    raise AssertionError("links never went quiet")


def pair() -> tuple[Link, Link]:
    return Link("host", now=0.0), Link("instrument", now=0.0)


# --- transfer between two links -----------------------------------------------------------------


@pytest.mark.parametrize("direction", ["instrument->host", "host->instrument"])
def test_multi_frame_message_both_directions(direction: str) -> None:
    host, instrument = pair()
    sender, receiver = (instrument, host) if direction == "instrument->host" else (host, instrument)
    assert len(LONG) > 247 and len(encode_frames(LONG)) >= 2
    ident = sender.send_message(LONG, 0.0)
    assert sender.state is State.ESTABLISHING
    pump(sender, receiver, 0.0)
    assert events(receiver) == [MessageReceived(LONG), LinkIdle()]
    assert events(sender) == [MessageSent(ident), LinkIdle()]
    assert sender.state is receiver.state is State.NEUTRAL
    assert sender.next_deadline() is None and receiver.next_deadline() is None


def test_wire_bytes_of_a_small_transfer() -> None:
    instrument = Link("instrument", now=0.0)
    instrument.send_message(b"H|\\^&\rL|1|N\r", 0.0)
    assert instrument.data_to_send() == E
    instrument.receive_data(A, 0.1)
    assert instrument.data_to_send() == build_frame(1, b"H|\\^&\rL|1|N\r", final=True)
    instrument.receive_data(A, 0.2)
    assert instrument.data_to_send() == K


def test_several_messages_in_one_session_number_frames_on() -> None:
    host, instrument = pair()
    messages = [LONG, b"H|\\^&\rL|1|N\r", LONG]
    ids = [instrument.send_message(m, 0.0) for m in messages]
    enqs = 0
    for _ in range(1000):
        wire = instrument.data_to_send()
        if not wire:
            break
        enqs += wire.count(E)
        host.receive_data(wire, 0.0)
        instrument.receive_data(host.data_to_send(), 0.0)
    assert enqs == 1  # one establishment for all three messages
    assert events(host) == [MessageReceived(m) for m in messages] + [LinkIdle()]
    assert events(instrument) == [MessageSent(i) for i in ids] + [LinkIdle()]


def test_message_queued_during_transfer_joins_the_session() -> None:
    host, instrument = pair()
    first = instrument.send_message(LONG, 0.0)
    host.receive_data(instrument.data_to_send(), 0.0)  # ENQ
    instrument.receive_data(host.data_to_send(), 0.0)  # ACK -> frame 1
    second = instrument.send_message(b"L|1|N\r", 0.0)
    pump(instrument, host, 0.0)
    assert events(instrument) == [MessageSent(first), MessageSent(second), LinkIdle()]
    assert [e for e in events(host) if isinstance(e, MessageReceived)] == [
        MessageReceived(LONG),
        MessageReceived(b"L|1|N\r"),
    ]


def test_frame_numbers_wrap_modulo_8() -> None:
    host, instrument = Link("host", now=0.0), Link("instrument", now=0.0, max_text=10)
    message = bytes(range(0x30, 0x7F))  # 79 printable bytes -> 8 frames of 10 text bytes
    instrument.send_message(message, 0.0)
    pump(instrument, host, 0.0)
    assert events(host) == [MessageReceived(message), LinkIdle()]


def test_send_message_refuses_what_cannot_be_framed() -> None:
    link = Link("host", now=0.0)
    with pytest.raises(LocalProtocolError):
        link.send_message(b"", 0.0)
    with pytest.raises(LocalProtocolError):
        link.send_message(b"bad\x02byte", 0.0)
    with pytest.raises(LocalProtocolError):
        Link("lis", now=0.0)  # type: ignore[arg-type]
    assert link.data_to_send() == b""


# --- receiver checks ----------------------------------------------------------------------------


def test_bad_checksum_is_naked_then_retransmission_accepted() -> None:
    host, instrument = pair()
    instrument.send_message(b"H|\\^&\rL|1|N\r", 0.0)
    host.receive_data(instrument.data_to_send(), 0.0)
    instrument.receive_data(host.data_to_send(), 0.0)
    frame = instrument.data_to_send()
    corrupt = frame[:-4] + (b"00" if frame[-4:-2] != b"00" else b"11") + b"\r\n"
    host.receive_data(corrupt, 1.0)
    assert host.data_to_send() == N
    [violation] = events(host)
    assert isinstance(violation, ProtocolViolation) and "checksum" in violation.detail
    instrument.receive_data(N, 1.0)
    assert instrument.data_to_send() == frame  # the same frame again
    host.receive_data(frame, 2.0)
    assert host.data_to_send() == A
    assert events(host) == [MessageReceived(b"H|\\^&\rL|1|N\r")]


def test_a_refused_frame_keeps_its_bytes_out_of_the_detail() -> None:
    # the detail may be logged; the frame's text (a patient ID here) may not
    host = Link("host", now=0.0)
    host.receive_data(E, 0.0)
    frame = build_frame(1, b"P|1||01017012345\r", final=True)
    host.receive_data(frame[:-4] + b"ZZ\r\n", 0.0)
    [violation] = events(host)
    assert isinstance(violation, ProtocolViolation)
    assert "01017012345" not in violation.detail and "checksum" in violation.detail
    assert b"01017012345" in violation.data


def test_wrong_frame_number_is_naked() -> None:
    host = Link("host", now=0.0)
    host.receive_data(E, 0.0)
    host.receive_data(build_frame(2, b"L|1|N\r", final=True), 0.0)
    assert host.data_to_send() == A + N
    [violation] = events(host)
    assert isinstance(violation, ProtocolViolation) and "frame number" in violation.detail


def test_duplicate_frame_is_acked_and_ignored() -> None:
    host = Link("host", now=0.0)
    f1 = encode_frames(LONG)[0]
    host.receive_data(E + f1, 0.0)
    host.receive_data(f1, 0.0)  # our ACK was lost (the sender saw it as NAK): same frame again
    assert host.data_to_send() == A + A + A
    for frame in encode_frames(LONG)[1:]:
        host.receive_data(frame, 0.0)
    host.receive_data(K, 0.0)
    assert events(host) == [MessageReceived(LONG), LinkIdle()]


def test_busy_receiver_answers_nak() -> None:
    host = Link("host", now=0.0)
    host.busy = True
    host.receive_data(E, 0.0)
    assert host.data_to_send() == N and host.state is State.NEUTRAL


def test_stray_bytes_before_stx_lenient_and_strict() -> None:
    frame = build_frame(1, b"L|1|N\r", final=True)
    for lenient in (True, False):
        host = Link("host", now=0.0, lenient=lenient)
        host.receive_data(b"\x00junk" + E + b"\r\nnoise" + frame + K, 0.0)
        got = events(host)
        assert got[-2:] == [MessageReceived(b"L|1|N\r"), LinkIdle()]
        violations = [e for e in got if isinstance(e, ProtocolViolation)]
        assert bool(violations) is not lenient


def test_lenient_frame_with_cr_only_line_end() -> None:
    host = Link("host", now=0.0, lenient=True)
    frame = build_frame(1, b"L|1|N\r", final=True)[:-1]  # no LF
    host.receive_data(E + frame, 0.0)
    assert host.data_to_send() == A + A
    host.receive_data(K, 0.0)
    assert events(host) == [MessageReceived(b"L|1|N\r"), LinkIdle()]


def test_eot_right_after_enq_keep_alive() -> None:
    lenient, strict = Link("host", now=0.0, lenient=True), Link("host", now=0.0)
    for link in (lenient, strict):
        link.receive_data(E + K, 0.0)
        assert link.data_to_send() == A and link.state is State.NEUTRAL
    assert events(lenient) == [LinkIdle()]
    first, idle = events(strict)
    assert isinstance(first, ProtocolViolation) and idle == LinkIdle()


def test_eot_inside_message_discards_partial() -> None:
    host = Link("host", now=0.0)
    host.receive_data(E + encode_frames(LONG)[0] + K, 0.0)
    first, idle = events(host)
    assert isinstance(first, ProtocolViolation) and "partial" in first.detail
    assert idle == LinkIdle()


# --- timers ---------------------------------------------------------------------------------


def test_no_reply_to_enq_times_out_after_15_s() -> None:
    instrument = Link("instrument", now=100.0)
    ident = instrument.send_message(LONG, 100.0)
    assert instrument.data_to_send() == E
    assert instrument.next_deadline() == 100.0 + REPLY_TIMEOUT
    instrument.handle_timeout(114.9)
    assert instrument.data_to_send() == b"" and events(instrument) == []
    instrument.handle_timeout(115.0)
    assert instrument.data_to_send() == K
    assert events(instrument) == [SendFailed(ident, "no reply to ENQ within 15 s"), LinkIdle()]
    assert instrument.state is State.NEUTRAL and instrument.next_deadline() is None


def test_no_reply_to_frame_times_out_after_15_s() -> None:
    instrument = Link("instrument", now=0.0)
    ident = instrument.send_message(LONG, 0.0)
    instrument.receive_data(A, 1.0)
    assert instrument.data_to_send() == E + encode_frames(LONG)[0]
    assert instrument.next_deadline() == 16.0
    instrument.handle_timeout(16.0)
    assert instrument.data_to_send() == K
    assert events(instrument) == [SendFailed(ident, "no reply to frame within 15 s"), LinkIdle()]


def test_failed_message_does_not_block_the_next() -> None:
    instrument = Link("instrument", now=0.0)
    first = instrument.send_message(b"L|1|N\r", 0.0)
    second = instrument.send_message(b"L|1|F\r", 0.0)
    instrument.handle_timeout(15.0)
    assert instrument.data_to_send() == E + K + E  # gave up on the first, tries the second
    assert events(instrument) == [SendFailed(first, "no reply to ENQ within 15 s"), LinkIdle()]
    host = Link("host", now=15.0)
    host.receive_data(E, 15.0)
    instrument.receive_data(host.data_to_send(), 15.0)
    pump(instrument, host, 15.0)
    assert events(instrument) == [MessageSent(second), LinkIdle()]


def test_receiver_times_out_after_30_s_and_discards_partial() -> None:
    host = Link("host", now=0.0)
    host.receive_data(E + encode_frames(LONG)[0], 5.0)
    assert host.next_deadline() == 5.0 + RECEIVE_TIMEOUT
    host.handle_timeout(34.0)
    assert events(host) == []
    host.handle_timeout(35.0)
    first, idle = events(host)
    assert isinstance(first, ProtocolViolation) and "30 s" in first.detail
    assert idle == LinkIdle() and host.state is State.NEUTRAL
    # A new session starts clean: frame 1 is expected again, the old part is gone.
    host.receive_data(E + build_frame(1, b"L|1|N\r", final=True) + K, 40.0)
    assert events(host) == [MessageReceived(b"L|1|N\r"), LinkIdle()]


def test_nak_to_enq_waits_10_s_before_retrying() -> None:
    instrument = Link("instrument", now=0.0)
    instrument.send_message(b"L|1|N\r", 0.0)
    assert instrument.data_to_send() == E
    instrument.receive_data(N, 2.0)
    assert instrument.state.value == "neutral"
    assert instrument.next_deadline() == 2.0 + BUSY_RETRY
    instrument.handle_timeout(11.9)
    assert instrument.data_to_send() == b""
    instrument.handle_timeout(12.0)
    assert instrument.data_to_send() == E and instrument.state is State.ESTABLISHING


# --- retransmission limit, contention, interrupt ------------------------------------------------


def test_six_naks_abort_with_eot_and_send_failed() -> None:
    instrument = Link("instrument", now=0.0)
    ident = instrument.send_message(LONG, 0.0)
    instrument.receive_data(A, 0.0)
    frame = encode_frames(LONG)[0]
    assert instrument.data_to_send() == E + frame
    for _ in range(MAX_ATTEMPTS - 1):
        instrument.receive_data(N, 0.0)
        assert instrument.data_to_send() == frame
    instrument.receive_data(b"?", 0.0)  # any character but ACK/EOT counts as NAK
    assert instrument.data_to_send() == K
    assert events(instrument) == [SendFailed(ident, "frame refused 6 times"), LinkIdle()]


def test_retry_counter_resets_after_each_good_frame() -> None:
    host, instrument = pair()
    instrument.send_message(LONG, 0.0)
    host.receive_data(instrument.data_to_send(), 0.0)
    instrument.receive_data(host.data_to_send(), 0.0)
    for _ in range(len(encode_frames(LONG))):
        frame = instrument.data_to_send()
        for _ in range(MAX_ATTEMPTS - 1):
            instrument.receive_data(N, 0.0)
            assert instrument.data_to_send() == frame
        host.receive_data(frame, 0.0)
        instrument.receive_data(host.data_to_send(), 0.0)
    assert isinstance(events(instrument)[0], MessageSent)


def test_contention_instrument_wins_host_waits() -> None:
    host, instrument = pair()
    host_msg = host.send_message(b"Q|1|^123\r", 0.0)
    inst_msg = instrument.send_message(LONG, 0.0)
    host_enq, inst_enq = host.data_to_send(), instrument.data_to_send()
    assert host_enq == inst_enq == E
    host.receive_data(inst_enq, 0.0)
    instrument.receive_data(host_enq, 0.0)
    # The host yields without answering; the instrument backs off 1 s and asks again.
    assert host.data_to_send() == b"" and instrument.data_to_send() == b""
    assert host.next_deadline() == HOST_CONTENTION_HOLD
    assert instrument.next_deadline() == INSTRUMENT_CONTENTION_RETRY
    instrument.handle_timeout(1.0)
    assert instrument.data_to_send() == E
    host.receive_data(E, 1.0)
    assert host.data_to_send() == A
    instrument.receive_data(A, 1.0)
    pump(instrument, host, 1.0)
    assert events(instrument) == [MessageSent(inst_msg), LinkIdle()]
    assert events(host) == [MessageReceived(LONG), LinkIdle()]
    # The host still keeps off the link until its 20 s hold ends, then sends.
    host.handle_timeout(19.9)
    assert host.data_to_send() == b""
    host.handle_timeout(20.0)
    assert host.data_to_send() == E
    instrument.receive_data(E, 20.0)
    pump(host, instrument, 20.0)
    assert events(host) == [MessageSent(host_msg), LinkIdle()]


def test_receiver_interrupt_sender_finishes_message_then_yields() -> None:
    host, instrument = pair()
    one = instrument.send_message(LONG, 0.0)
    two = instrument.send_message(b"L|1|N\r", 0.0)
    host.receive_data(instrument.data_to_send(), 0.0)
    instrument.receive_data(host.data_to_send(), 0.0)
    host.request_interrupt()
    host.receive_data(instrument.data_to_send(), 0.0)  # frame 1
    assert host.data_to_send() == K  # EOT in place of ACK
    instrument.receive_data(K, 0.0)
    pump(instrument, host, 0.0)  # the rest of the current message, then EOT
    assert events(host) == [MessageReceived(LONG), LinkIdle()]
    assert events(instrument) == [MessageSent(one), LinkIdle()]
    assert instrument.pending == 1 and instrument.next_deadline() == 15.0
    # The receiver now uses the link; when its session ends the sender may go again at once.
    query = host.send_message(b"Q|1|^123\r", 1.0)
    pump(host, instrument, 1.0)
    assert events(host) == [
        MessageSent(query),
        LinkIdle(),
        MessageReceived(b"L|1|N\r"),
        LinkIdle(),
    ]
    assert events(instrument) == [
        MessageReceived(b"Q|1|^123\r"),
        LinkIdle(),
        MessageSent(two),
        LinkIdle(),
    ]


def test_receiver_interrupt_unanswered_sender_waits_15_s() -> None:
    host = Link("host", now=0.0)
    instrument = Link("instrument", now=0.0)
    instrument.send_message(b"L|1|N\r", 0.0)
    instrument.send_message(b"L|1|F\r", 0.0)
    host.receive_data(instrument.data_to_send(), 0.0)
    instrument.receive_data(host.data_to_send(), 0.0)
    host.request_interrupt()
    host.receive_data(instrument.data_to_send(), 0.0)
    instrument.receive_data(host.data_to_send(), 0.0)
    assert instrument.data_to_send() == K
    instrument.handle_timeout(14.0)
    assert instrument.data_to_send() == b""
    instrument.handle_timeout(15.0)
    assert instrument.data_to_send() == E


def test_request_interrupt_needs_receiving_state() -> None:
    with pytest.raises(LocalProtocolError):
        Link("host", now=0.0).request_interrupt()


def test_confirm_holds_the_last_ack_until_the_driver_stored_the_message() -> None:
    host = Link("host", now=0.0, confirm=True)
    instrument = Link("instrument", now=0.0)
    ident = instrument.send_message(LONG, 0.0)
    pump(instrument, host, 0.0)
    assert events(host) == [MessageReceived(LONG)]
    assert host.state is State.CONFIRMING and events(instrument) == []
    host.confirm_message(1.0)
    pump(host, instrument, 1.0)
    assert events(instrument) == [MessageSent(ident), LinkIdle()]
    assert events(host) == [LinkIdle()]
    with pytest.raises(LocalProtocolError):
        host.confirm_message(2.0)


def test_unconfirmed_message_sender_gives_up() -> None:
    host = Link("host", now=0.0, confirm=True)
    instrument = Link("instrument", now=0.0)
    ident = instrument.send_message(b"L|1|N\r", 0.0)
    pump(instrument, host, 0.0)
    instrument.handle_timeout(REPLY_TIMEOUT)
    host.receive_data(instrument.data_to_send(), REPLY_TIMEOUT)
    assert events(instrument) == [SendFailed(ident, "no reply to frame within 15 s"), LinkIdle()]
    received, violation, idle = events(host)
    assert received == MessageReceived(b"L|1|N\r") and idle == LinkIdle()
    assert isinstance(violation, ProtocolViolation) and "confirmation" in violation.detail


# --- chunking and fuzzing -----------------------------------------------------------------------


def session_bytes() -> bytes:
    """What an instrument puts on the wire for LONG plus a short message (ACKs assumed)."""
    frames = encode_frames(LONG)
    short = encode_frames(b"L|1|N\r", first_number=(len(frames) + 1) % 8)
    return E + b"".join(frames + short) + K


def run(chunks: list[bytes], *, lenient: bool = False) -> tuple[list[Event], bytes]:
    host = Link("host", now=0.0, lenient=lenient)
    for chunk in chunks:
        host.receive_data(chunk, 0.0)
    return events(host), host.data_to_send()


@given(cuts=st.lists(st.integers(min_value=0, max_value=len(session_bytes())), max_size=40))
def test_random_chunking_gives_the_same_events(cuts: list[int]) -> None:
    stream = session_bytes()
    bounds = [0, *sorted(cuts), len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    assert run(chunks) == run([stream])


@pytest.mark.parametrize("lenient", [False, True])
def test_session_whole_byte_by_byte_and_with_trailing_garbage(lenient: bool) -> None:
    stream = session_bytes()
    whole = run([stream], lenient=lenient)
    assert run([bytes([b]) for b in stream], lenient=lenient) == whole
    got, wire = run([stream, b"\x00garbage\r\n"], lenient=lenient)
    assert wire == whole[1] and got[: len(whole[0])] == whole[0]
    assert all(isinstance(e, ProtocolViolation) for e in got[len(whole[0]) :])
    assert bool(got[len(whole[0]) :]) is not lenient
    assert run([stream])[0] == [MessageReceived(LONG), MessageReceived(b"L|1|N\r"), LinkIdle()]


@settings(max_examples=300)
@given(
    data=st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.sampled_from([E, A, N, K, bytes([STX]), *encode_frames(LONG)]),
        ),
        max_size=30,
    ),
    role=st.sampled_from(["host", "instrument"]),
    lenient=st.booleans(),
    send=st.booleans(),
)
def test_any_bytes_give_events_never_other_exceptions(
    data: list[bytes], role: str, lenient: bool, send: bool
) -> None:
    link = Link("host" if role == "host" else "instrument", now=0.0, lenient=lenient)
    if send:
        link.send_message(LONG, 0.0)
    now = 0.0
    for chunk in data:  # receive_data never raises: the peer's faults become events
        now += 3.0
        link.receive_data(chunk, now)
        link.handle_timeout(now)
        link.data_to_send()
        assert all(isinstance(e, Event) for e in events(link))
    deadline = link.next_deadline()
    assert deadline is None or deadline >= now
    if not send:  # after the timers run out, a clean session still works
        link.handle_timeout(now + 100.0)
        events(link)
        link.receive_data(E + build_frame(1, b"L|1|N\r", final=True) + K, now + 100.0)
        assert MessageReceived(b"L|1|N\r") in events(link)


# --- lenient frame ends, bulk intake, reporting -------------------------------------------------

MAGLUMI = b"\x02H|\\^&||PSWD\rL|1|N\r\x03"  # no frame number, checksum or CR LF


def test_frame_without_line_end_completes_after_the_tail_wait() -> None:
    host = Link("host", now=0.0, lenient=True)
    host.receive_data(E + MAGLUMI[:-1], 1.0)
    assert host.next_deadline() == 1.0 + RECEIVE_TIMEOUT  # mid-frame: only the receive timer
    host.receive_data(MAGLUMI[-1:], 2.0)  # the ETX
    assert host.data_to_send() == A and host.next_deadline() == 2.0 + FRAME_TAIL_WAIT
    host.receive_data(b"7", 2.5)  # one checksum digit: the wait starts again
    assert host.next_deadline() == 2.5 + FRAME_TAIL_WAIT
    host.handle_timeout(2.5 + FRAME_TAIL_WAIT - 0.001)
    assert host.data_to_send() == b"" and events(host) == []
    host.handle_timeout(2.5 + FRAME_TAIL_WAIT)
    # "7" is one hex digit, not a checksum: the frame is refused, not taken blind.
    assert host.data_to_send() == N
    [violation] = events(host)
    assert isinstance(violation, ProtocolViolation) and "terminator" in violation.detail
    host.receive_data(MAGLUMI, 5.0)  # the retransmission, then silence
    host.handle_timeout(5.0 + FRAME_TAIL_WAIT)
    assert host.data_to_send() == A
    assert events(host) == [MessageReceived(b"H|\\^&||PSWD\rL|1|N\r")]
    assert host.next_deadline() == 5.0 + FRAME_TAIL_WAIT + RECEIVE_TIMEOUT


@pytest.mark.parametrize(
    ("after", "then"),
    [(K, [LinkIdle()]), (bytes([STX]), []), (E, [])],
)
def test_frame_without_line_end_completes_on_the_next_control_byte(
    after: bytes, then: list[Event]
) -> None:
    host = Link("host", now=0.0, lenient=True)
    host.receive_data(E + MAGLUMI + after, 0.0)
    assert host.data_to_send().startswith(A + A)  # ENQ answered, frame answered at once
    assert events(host) == [MessageReceived(b"H|\\^&||PSWD\rL|1|N\r"), *then]


def test_strict_link_has_no_tail_wait() -> None:
    host = Link("host", now=0.0)
    host.receive_data(E + MAGLUMI, 0.0)
    assert host.next_deadline() == RECEIVE_TIMEOUT
    host.receive_data(K, 1.0)
    assert host.data_to_send() == A
    cut, empty, idle = events(host)
    assert isinstance(cut, ProtocolViolation) and "cut short" in cut.detail
    assert isinstance(empty, ProtocolViolation) and idle == LinkIdle()


def test_lenient_lf_in_text_does_not_end_the_frame() -> None:
    text = b"H|\\^&\r\nL|1|N\r\n"
    frame = build_frame(1, text, final=True)
    lenient, strict = Link("host", now=0.0, lenient=True), Link("host", now=0.0)
    for link in (lenient, strict):
        link.receive_data(E + frame + K, 0.0)
    assert lenient.data_to_send() == A + A
    assert events(lenient) == [MessageReceived(text), LinkIdle()]
    assert strict.data_to_send() == A + N  # the first LF ended a frame with no terminator
    assert not any(isinstance(e, MessageReceived) for e in events(strict))


def test_frames_over_247_bytes_and_renumbered_frames_are_lenient_only() -> None:
    long_text = b"R|1|" + b"9" * 400 + b"\r"
    frames = [build_frame(1, b"H|\\^&\r", final=True), build_frame(1, long_text, final=True)]
    lenient, strict = Link("host", now=0.0, lenient=True), Link("host", now=0.0)
    for link in (lenient, strict):
        link.receive_data(E + b"".join(frames) + K, 0.0)
    assert lenient.data_to_send() == A * 3
    got = events(lenient)
    assert got[0] == MessageReceived(b"H|\\^&\r") and got[2] == MessageReceived(long_text)
    assert isinstance(got[1], ProtocolViolation) and got[1].detail.endswith("; accepted")
    assert strict.data_to_send() == A + A + N


def test_frame_outside_a_session_is_reported_even_when_lenient() -> None:
    host = Link("host", now=0.0, lenient=True)
    host.receive_data(build_frame(1, b"L|1|N\r", final=True), 0.0)  # no ENQ first
    assert host.data_to_send() == b""
    [violation] = events(host)
    assert isinstance(violation, ProtocolViolation) and "STX" in violation.detail


def test_a_run_of_stray_bytes_is_one_violation() -> None:
    host = Link("host", now=0.0)
    host.receive_data(b"noise", 0.0)
    host.receive_data(b" more", 0.0)
    assert events(host) == [ProtocolViolation("unexpected byte(s) in state neutral", b"noise more")]
    host.receive_data(b"x" * 1000, 0.0)
    [violation] = events(host)
    assert isinstance(violation, ProtocolViolation) and len(violation.data) == 256  # bounded


def test_endless_frame_is_handed_to_the_decoder_at_the_buffer_limit() -> None:
    for lenient in (False, True):
        host = Link("host", now=0.0, lenient=lenient)
        host.receive_data(E + bytes([STX]) + b"1" + b"x" * (MAX_FRAME_BUFFER + 10), 0.0)
        assert host.data_to_send() == A + N
        violation = events(host)[0]  # then the ten bytes past the limit are stray
        assert isinstance(violation, ProtocolViolation) and len(violation.data) == MAX_FRAME_BUFFER


def test_unconfirmed_message_times_out_after_30_s() -> None:
    host = Link("host", now=0.0, confirm=True)
    host.receive_data(E + build_frame(1, b"L|1|N\r", final=True), 1.0)
    assert host.state is State.CONFIRMING and host.next_deadline() == 1.0 + RECEIVE_TIMEOUT
    host.handle_timeout(1.0 + RECEIVE_TIMEOUT)
    received, violation, idle = events(host)
    assert received == MessageReceived(b"L|1|N\r") and idle == LinkIdle()
    assert isinstance(violation, ProtocolViolation) and "30 s" in violation.detail
    assert host.state.value == "neutral" and host.data_to_send() == A  # no ACK for the frame


def lowercase_checksum(frame: bytes) -> bytes:
    """ "ETX C1 C2" with the checksum in lowercase hex (accepted when lenient)."""
    return frame[:-2] + frame[-2:].lower()


def quirky_session() -> bytes:
    """A lenient session: stray bytes, unnumbered and numbered frames, CR-only and no line end."""
    return (
        b"\x00\x06junk"
        + E
        + MAGLUMI
        + build_frame(2, b"P|1\r", final=False)[:-1]  # "ETB cs CR"
        + lowercase_checksum(build_frame(3, b"R|1|^^^GLU|5,4\r", final=True)[:-2])
        + K
        + E
        + build_frame(1, b"L|1|N\r", final=True)
        + K
    )


@settings(max_examples=200)
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(quirky_session())), max_size=60))
def test_lenient_chunking_never_changes_the_outcome(cuts: list[int]) -> None:
    stream = quirky_session()
    bounds = [0, *sorted(cuts), len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    expected = run([stream], lenient=True)
    assert run(chunks, lenient=True) == expected
    assert run([bytes([b]) for b in stream], lenient=True) == expected
    assert [e for e in expected[0] if isinstance(e, MessageReceived)] == [
        MessageReceived(b"H|\\^&||PSWD\rL|1|N\r"),
        MessageReceived(b"P|1\rR|1|^^^GLU|5,4\r"),
        MessageReceived(b"L|1|N\r"),
    ]


@settings(max_examples=100)
@given(
    message=st.binary(min_size=241, max_size=2000).map(
        lambda b: (
            bytes(c for c in b if c not in (0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0A)).translate(
                bytes.maketrans(b"\x10\x11\x12\x13\x14\x15\x16\x17", b"abcdefgh")
            )
            or b"x"
        )
    ),
    chunk=st.integers(1, 600),
)
def test_long_messages_split_and_join_through_both_roles(message: bytes, chunk: int) -> None:
    host, instrument = pair()
    ident = instrument.send_message(message, 0.0)
    for _ in range(1000):
        wire = instrument.data_to_send()
        if not wire:
            break
        for i in range(0, len(wire), chunk):
            host.receive_data(wire[i : i + chunk], 0.0)
        instrument.receive_data(host.data_to_send(), 0.0)
    assert events(host) == [MessageReceived(message), LinkIdle()]
    assert events(instrument) == [MessageSent(ident), LinkIdle()]


@pytest.mark.parametrize("lenient", [False, True])
def test_a_repeat_is_caught_however_it_was_read(lenient: bool) -> None:
    # Our ACK was lost: the sender repeats frame 1, which this time arrives byte by byte.
    host = Link("host", now=0.0, lenient=lenient)
    first = encode_frames(LONG)[0]
    host.receive_data(E + first, 0.0)
    for byte in first:
        host.receive_data(bytes([byte]), 0.0)
    for frame in encode_frames(LONG)[1:]:
        host.receive_data(frame, 0.0)
    host.receive_data(K, 0.0)
    assert events(host) == [MessageReceived(LONG), LinkIdle()]
