"""Sans-IO MLLP framing: wrap HL7 payloads in VT ... FS CR and cut a byte stream back into them."""

from __future__ import annotations

from drivers.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["CR", "DEFAULT_MAX_SIZE", "FS", "VT", "MllpDecoder", "frame"]

VT = b"\x0b"  # start block
FS = b"\x1c"  # end block
CR = b"\x0d"  # carriage return after the end block
DEFAULT_MAX_SIZE = 1024 * 1024

_VT = 0x0B
_FS = 0x1C
_CR = 0x0D


def frame(message: bytes) -> bytes:
    """Wrap one HL7 message in an MLLP block (HL7 v2.5.1 Appendix C: <VT> data <FS><CR>).

    The payload may not contain VT or FS: the receiver could not find the frame's edges.
    """
    if _VT in message or _FS in message:
        raise LocalProtocolError(
            "an MLLP payload may not contain VT (0x0B) or FS (0x1C)", field="mllp", data=message
        )
    return VT + message + FS + CR


class MllpDecoder:
    """Cut MLLP blocks out of a byte stream, leniently.

    * Bytes before a VT are skipped and counted in ``discarded`` (line noise, stray CRs).
    * A new VT before the end of a block abandons the unfinished block (also counted).
    * The block ends at FS CR; an FS followed by anything else also ends it (the extra byte is
      left in the stream and skipped as noise unless it is the next VT).
    * An empty block (VT FS CR, used by some peers as a keep-alive) is skipped and counted.
    * A block longer than ``max_size`` raises ``RemoteProtocolError`` (field ``"mllp"``) carrying
      the offending bytes; the decoder drops them and hunts for the next VT, so it stays usable.
    """

    __slots__ = ("_buffer", "_in_block", "_scan_from", "discarded", "max_size")

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        if max_size < 1:
            raise ValueError("max_size must be positive")
        self.max_size = max_size
        self.discarded = 0
        self._buffer = bytearray()
        self._in_block = False  # True when _buffer[0] is the VT of an unfinished block
        self._scan_from = 1  # where to resume looking for FS inside the current block

    @property
    def buffered(self) -> int:
        """How many received bytes are waiting: a partial block, if any."""
        return len(self._buffer)

    def receive_data(self, data: bytes) -> None:
        """Feed bytes as they arrived from the stream (any split is fine)."""
        self._buffer += data

    def next_message(self) -> bytes | None:
        """Return the next complete payload (without framing), or None if more bytes are needed."""
        buf = self._buffer
        while True:
            if not self._in_block:
                start = buf.find(VT)
                if start < 0:
                    self.discarded += len(buf)
                    buf.clear()
                    return None
                if start:
                    self.discarded += start
                    del buf[:start]
                self._in_block = True
                self._scan_from = 1
            end = buf.find(FS, self._scan_from)
            if end < 0:
                # A VT inside an unfinished block means the sender started over.
                restart = buf.find(VT, self._scan_from)
                if restart > 0:
                    self.discarded += restart
                    del buf[:restart]
                    self._scan_from = 1
                    continue
                self._scan_from = max(1, len(buf))
                self._check_size(len(buf) - 1)
                return None
            restart = buf.rfind(VT, 1, end)
            if restart > 0:
                self.discarded += restart
                del buf[:restart]
                end -= restart
            if end - 1 > self.max_size:
                self._check_size(end - 1)
            if end + 1 >= len(buf):
                # FS is the last byte so far: wait for the CR (or whatever follows).
                self._scan_from = end
                return None
            payload = bytes(buf[1:end])
            consumed = end + 2 if buf[end + 1] == _CR else end + 1
            del buf[:consumed]
            self._in_block = False
            if payload:
                return payload
            self.discarded += consumed  # an empty block: a keep-alive, nothing to deliver

    def take_unfinished(self) -> bytes | None:
        """The unfinished block's payload so far (without its VT), removed from the decoder; None
        when no block is open. For the end of a stream: a block cut off by a hang-up is kept,
        not silently lost."""
        if not self._in_block:
            return None
        payload = bytes(self._buffer[1:])
        self._buffer.clear()
        self._in_block = False
        self._scan_from = 1
        return payload

    def _check_size(self, size: int) -> None:
        if size > self.max_size:
            offending = bytes(self._buffer)
            self._buffer.clear()
            self._in_block = False
            self._scan_from = 1
            raise RemoteProtocolError(
                f"MLLP block exceeds {self.max_size} bytes", field="mllp", data=offending
            )
