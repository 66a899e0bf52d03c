"""ASTM E1381 (LIS1-A) framing, sans-IO: checksum, split a message into frames, decode and join."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import LocalProtocolError, RemoteProtocolError

STX = 0x02
ETX = 0x03
EOT = 0x04
ENQ = 0x05
ACK = 0x06
NAK = 0x15
ETB = 0x17
CR = 0x0D
LF = 0x0A

#: E1381 6.3.1: "A frame ... contains a maximum of 247 characters (including frame overhead)".
MAX_FRAME = 247
#: The seven overhead characters are STX FN ETB|ETX C1 C2 CR LF, which leaves 240 for text.
MAX_TEXT = MAX_FRAME - 7
#: E1381 6.6: characters a sender may not place in the text of a frame
#: (SOH STX ETX EOT ENQ ACK DLE NAK SYN ETB LF DC1 DC2 DC3 DC4).
RESTRICTED = frozenset({0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x10, 0x15, 0x16, 0x17, 0x0A})
RESTRICTED |= frozenset({0x11, 0x12, 0x13, 0x14})
#: The same set as bytes, for ``bytes.translate`` to delete: one C pass checks a whole text.
_RESTRICTED_BYTES = bytes(sorted(RESTRICTED))
#: In lenient mode only the characters that would make a frame ambiguous are refused
#: (STX ETX EOT ENQ ETB); LF and the device-control characters are tolerated in the text.
_LENIENT_RESTRICTED_BYTES = bytes((STX, ETX, EOT, ENQ, ETB))
_HEX_UPPER = frozenset(b"0123456789ABCDEF")
_HEX_ANY = _HEX_UPPER | frozenset(b"abcdef")
_DIGITS = frozenset(b"0123456789")


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """One checked frame: its number (0-7), its text, and whether it ended in ETX (final).

    ``numbered`` is False for a frame sent without a frame number (lenient only, Snibe
    Maglumi); its ``number`` is then the number that was expected, or 0.
    """

    number: int
    text: bytes
    final: bool
    numbered: bool = True


#: The two checksum characters for each value of the sum mod 256: a lookup, not a format.
_HEX_PAIRS = tuple(b"%02X" % value for value in range(256))
#: The frame number characters '0'..'7'.
_NUMBERS = tuple(bytes([0x30 + number]) for number in range(8))
_END = {True: bytes([ETX]), False: bytes([ETB])}


def checksum(frame_number_and_text: bytes) -> bytes:
    """Return the E1381 checksum: sum of bytes from FN through ETB/ETX, mod 256, as two hex chars.

    E1381 6.3.3: "The checksum is computed by adding the binary values of the characters,
    keeping the least significant eight bits of the result" and is sent as two uppercase
    ASCII hexadecimal characters.
    """
    return _HEX_PAIRS[sum(frame_number_and_text) & 0xFF]


def build_frame(number: int, text: bytes, *, final: bool) -> bytes:
    """Return one frame ``STX FN text ETB|ETX C1 C2 CR LF`` (no length limit is applied here)."""
    if not 0 <= number <= 7:
        raise LocalProtocolError(f"frame number {number} is not 0-7", field="frame number")
    body = _NUMBERS[number] + text + _END[final]
    return b"\x02%s%s\r\n" % (body, _HEX_PAIRS[sum(body) & 0xFF])


def encode_frames(
    message: bytes, *, max_text: int = MAX_TEXT, first_number: int = 1
) -> list[bytes]:
    """Split ``message`` into frames numbered ``first_number``, +1 mod 8; ETB between, ETX last.

    E1381 6.3.1: messages longer than 240 characters are divided into intermediate frames
    (ending in ETB) and one end frame (ending in ETX). The frame number starts at 1 with the
    first frame of a transfer phase and counts modulo 8 (6.3.2).
    """
    if not 1 <= max_text <= MAX_TEXT:
        raise LocalProtocolError(f"max_text must be 1..{MAX_TEXT}, not {max_text}", field="frame")
    if not 0 <= first_number <= 7:
        raise LocalProtocolError(f"first_number must be 0-7, not {first_number}", field="frame")
    if not message:
        raise LocalProtocolError("an empty message cannot be framed", field="frame")
    if _holds(message, 0, len(message), _RESTRICTED_BYTES):
        bad = next(b for b in message if b in RESTRICTED)
        raise LocalProtocolError(
            f"message holds restricted character 0x{bad:02X}", field="frame", data=message
        )
    size = len(message)
    frames = []
    for index, start in enumerate(range(0, size, max_text)):
        end = _END[start + max_text >= size]
        body = _NUMBERS[(first_number + index) % 8] + message[start : start + max_text] + end
        frames.append(b"\x02%s%s\r\n" % (body, _HEX_PAIRS[sum(body) & 0xFF]))
    return frames


def _holds(data: bytes, start: int, end: int, characters: bytes) -> bool:
    """True when ``data[start:end]`` holds any of ``characters`` (deleting them shortens it)."""
    return len(data[start:end].translate(None, characters)) != end - start


def _fail(message: str, field: str, frame: bytes) -> RemoteProtocolError:
    return RemoteProtocolError(message, field=field, data=frame)


def decode_frame(
    frame: bytes, *, expected_number: int | None, lenient: bool = False
) -> DecodedFrame:
    """Check and decode one frame, raising ``RemoteProtocolError`` naming the bad part.

    Strict: ``STX FN text ETB|ETX C1 C2 CR LF``, at most 247 bytes, uppercase hex checksum
    that matches, no restricted characters in the text. Lenient also accepts a missing
    checksum, lowercase hex, line ends of CR LF, CR, LF or none, frames over 247 bytes,
    LF and device-control characters in the text, and no frame number at all when the text
    starts right after STX (its first byte is then not a digit). A checksum that is present
    must always match.
    """
    number, start, term = _check_frame(frame, expected_number, lenient)
    if start == 1:
        number = 0 if expected_number is None else expected_number % 8
        return DecodedFrame(number, frame[1:term], frame[term] == ETX, numbered=False)
    return DecodedFrame(number, frame[start:term], frame[term] == ETX)


def _check_frame(frame: bytes, expected_number: int | None, lenient: bool) -> tuple[int, int, int]:
    """Check ``frame``; return its number, where its text starts (1: no number) and its ETX/ETB."""
    size = len(frame)
    if not size or frame[0] != STX:
        raise _fail("frame does not start with STX", "frame", frame)
    if lenient:
        end = size
        for _ in range(2):
            if end > 1 and frame[end - 1] in (CR, LF):
                end -= 1
        if end > 1 and frame[end - 1] in (ETX, ETB):
            term, sent = end - 1, b""
        else:
            term, sent = end - 3, frame[end - 2 : end]
    else:
        if size > MAX_FRAME:
            raise _fail(f"frame of {size} bytes exceeds {MAX_FRAME}", "frame", frame)
        if frame[-2:] != b"\r\n":
            raise _fail("frame does not end with CR LF", "frame", frame)
        term, sent = size - 5, frame[-4:-2]
    if term < 2 or frame[term] not in (ETX, ETB):
        raise _fail("frame has no ETB/ETX terminator where expected", "frame", frame)
    fn = frame[1]
    numbered = 0x30 <= fn <= 0x37
    if not numbered and (not lenient or fn in _DIGITS):
        raise _fail(f"frame number byte 0x{fn:02X} is not '0'-'7'", "frame number", frame)
    start = 2 if numbered else 1
    if _holds(frame, start, term, _LENIENT_RESTRICTED_BYTES if lenient else _RESTRICTED_BYTES):
        raise _fail("frame text holds a restricted character", "frame", frame)
    if sent or not lenient:
        expected = _HEX_PAIRS[sum(frame[1 : term + 1]) & 0xFF]
        if (sent.upper() if lenient else sent) != expected:
            digits = _HEX_ANY if lenient else _HEX_UPPER
            if len(sent) != 2 or sent[0] not in digits or sent[1] not in digits:
                raise _fail(f"checksum {sent!r} is not two hex digits", "checksum", frame)
            raise _fail(f"checksum {sent!r} should be {expected!r}", "checksum", frame)
    number = fn - 0x30
    if numbered and expected_number is not None and number != expected_number % 8:
        raise _fail(f"frame number {number}, expected {expected_number % 8}", "frame number", frame)
    return number, start, term


class FrameAssembler:
    """Join intermediate (ETB) frames and the end (ETX) frame into messages, checking numbers.

    Frame numbers run on across messages within one transfer phase; call ``reset()`` when a new
    phase starts (after ENQ). A frame that fails to decode leaves the state unchanged, so the link
    layer may NAK it and accept the retransmission. E1381 6.3.2: a repeat of the frame last
    accepted (same number, same bytes: our ACK was lost) is accepted and ignored.

    Lenient: a frame whose number is out of sequence is accepted and the count follows it (some
    analysers restart at 1 per message; Horiba Yumizen H500 numbers its histogram frames
    anyhow). Since a sender only moves on after an ACK, a repeat is caught by its bytes, not its
    number. ``notice`` then says what was tolerated, for the caller to report.
    """

    def __init__(
        self, *, lenient: bool = False, max_message: int = 1 << 20, first_number: int = 1
    ) -> None:
        self.lenient = lenient
        self.max_message = max_message
        self.notice: str | None = None
        self._parts: list[bytes] = []
        self._size = 0
        self._expected = first_number % 8
        self._last: bytes | None = None

    @property
    def expected_number(self) -> int:
        """The frame number the next new frame must carry."""
        return self._expected

    @property
    def in_message(self) -> bool:
        """True while intermediate frames are held, waiting for the end frame."""
        return bool(self._parts)

    def reset(self) -> None:
        """Forget any partial message and expect frame number 1 (a new transfer phase)."""
        self._parts.clear()
        self._size = 0
        self._expected = 1
        self._last = None
        self.notice = None

    def feed(self, frame: bytes) -> bytes | None:
        """Accept one frame; return the whole message when ``frame`` is the end frame."""
        self.notice = None
        if self._last is not None and frame == self._last:
            return None
        expected = self._expected
        number, start, term = _check_frame(frame, None if self.lenient else expected, self.lenient)
        if self._size + term - start > self.max_message:
            raise _fail(f"message exceeds {self.max_message} bytes", "message", frame)
        self._last = frame
        if start == 2:  # an unnumbered frame (lenient) leaves the count where it was
            if number != expected:
                self.notice = f"frame number {number}, expected {expected}; accepted"
            self._expected = (number + 1) % 8
        self._parts.append(frame[start:term])
        self._size += term - start
        if frame[term] != ETX:
            return None
        message = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return message
