"""ASTM E1381 (LIS1-A) framing, sans-IO: checksum, split a message into frames, decode and join."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import LocalProtocolError, RemoteProtocolError

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
#: E1381 6.6.2: characters a sender may not place in the text of a frame
#: (SOH STX ETX EOT ENQ ACK DLE NAK SYN ETB LF DC1 DC2 DC3 DC4).
RESTRICTED = frozenset({0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x10, 0x15, 0x16, 0x17, 0x0A})
RESTRICTED |= frozenset({0x11, 0x12, 0x13, 0x14})
#: In lenient mode only the characters that would make a frame ambiguous are refused.
_LENIENT_RESTRICTED = frozenset({STX, ETX, ETB, EOT, ENQ})
_HEX_UPPER = frozenset(b"0123456789ABCDEF")
_HEX_ANY = _HEX_UPPER | frozenset(b"abcdef")


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """One checked frame: its number (0-7), its text, and whether it ended in ETX (final)."""

    number: int
    text: bytes
    final: bool


def checksum(frame_number_and_text: bytes) -> bytes:
    """Return the E1381 checksum: sum of bytes from FN through ETB/ETX, mod 256, as two hex chars.

    E1381 6.3.4: "The checksum is computed by adding the binary values of the characters,
    keeping the least significant eight bits of the result" and is sent as two uppercase
    ASCII hexadecimal characters.
    """
    return b"%02X" % (sum(frame_number_and_text) % 256)


def build_frame(number: int, text: bytes, *, final: bool) -> bytes:
    """Return one frame ``STX FN text ETB|ETX C1 C2 CR LF`` (no length limit is applied here)."""
    if not 0 <= number <= 7:
        raise LocalProtocolError(f"frame number {number} is not 0-7", field="frame number")
    body = bytes([0x30 + number]) + text + bytes([ETX if final else ETB])
    return bytes([STX]) + body + checksum(body) + b"\r\n"


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
    bad = next((b for b in message if b in RESTRICTED), None)
    if bad is not None:
        raise LocalProtocolError(
            f"message holds restricted character 0x{bad:02X}", field="frame", data=message
        )
    chunks = [message[i : i + max_text] for i in range(0, len(message), max_text)]
    last = len(chunks) - 1
    return [
        build_frame((first_number + i) % 8, chunk, final=i == last)
        for i, chunk in enumerate(chunks)
    ]


def _fail(message: str, field: str, frame: bytes) -> RemoteProtocolError:
    return RemoteProtocolError(message, field=field, data=frame)


def decode_frame(
    frame: bytes, *, expected_number: int | None, lenient: bool = False
) -> DecodedFrame:
    """Check and decode one frame, raising ``RemoteProtocolError`` naming the bad part.

    Strict: ``STX FN text ETB|ETX C1 C2 CR LF``, at most 247 bytes, uppercase hex checksum
    that matches, no restricted characters in the text. Lenient also accepts a missing
    checksum, lowercase hex, line ends of CR LF, CR, LF or none, and frames over 247 bytes.
    """
    if not frame or frame[0] != STX:
        raise _fail("frame does not start with STX", "frame", frame)
    if not lenient and len(frame) > MAX_FRAME:
        raise _fail(f"frame of {len(frame)} bytes exceeds {MAX_FRAME}", "frame", frame)
    if lenient:
        end = len(frame)
        for _ in range(2):
            if end > 1 and frame[end - 1] in (CR, LF):
                end -= 1
        if end > 1 and frame[end - 1] in (ETX, ETB):
            term, sent = end - 1, b""
        else:
            term, sent = end - 3, frame[end - 2 : end]
    else:
        if not frame.endswith(b"\r\n"):
            raise _fail("frame does not end with CR LF", "frame", frame)
        term, sent = len(frame) - 5, frame[-4:-2]
    if term < 2 or frame[term] not in (ETX, ETB):
        raise _fail("frame has no ETB/ETX terminator where expected", "frame", frame)
    fn = frame[1]
    if not 0x30 <= fn <= 0x37:
        raise _fail(f"frame number byte 0x{fn:02X} is not '0'-'7'", "frame number", frame)
    number = fn - 0x30
    text = frame[2:term]
    restricted = _LENIENT_RESTRICTED if lenient else RESTRICTED
    if any(b in restricted for b in text):
        raise _fail("frame text holds a restricted character", "frame", frame)
    if sent or not lenient:
        digits = _HEX_ANY if lenient else _HEX_UPPER
        if len(sent) != 2 or any(b not in digits for b in sent):
            raise _fail(f"checksum {sent!r} is not two hex digits", "checksum", frame)
        expected = checksum(frame[1 : term + 1])
        if sent.upper() != expected:
            raise _fail(f"checksum {sent!r} should be {expected!r}", "checksum", frame)
    if expected_number is not None and number != expected_number % 8:
        raise _fail(f"frame number {number}, expected {expected_number % 8}", "frame number", frame)
    return DecodedFrame(number=number, text=text, final=frame[term] == ETX)


class FrameAssembler:
    """Join intermediate (ETB) frames and the end (ETX) frame into messages, checking numbers.

    Frame numbers run on across messages within one transfer phase; call ``reset()`` when a new
    phase starts (after ENQ). A frame that fails to decode leaves the state unchanged, so the link
    layer may NAK it and accept the retransmission. E1381 6.3.2: a repeat of the frame last
    accepted (same number, same bytes: our ACK was lost) is accepted and ignored.
    """

    def __init__(
        self, *, lenient: bool = False, max_message: int = 1 << 20, first_number: int = 1
    ) -> None:
        self.lenient = lenient
        self.max_message = max_message
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

    def feed(self, frame: bytes) -> bytes | None:
        """Accept one frame; return the whole message when ``frame`` is the end frame."""
        if self._last is not None and frame == self._last:
            return None
        decoded = decode_frame(frame, expected_number=self._expected, lenient=self.lenient)
        if self._size + len(decoded.text) > self.max_message:
            raise _fail(f"message exceeds {self.max_message} bytes", "message", frame)
        self._last = frame
        self._expected = (self._expected + 1) % 8
        self._parts.append(decoded.text)
        self._size += len(decoded.text)
        if not decoded.final:
            return None
        message = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        return message
