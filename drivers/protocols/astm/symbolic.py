"""Symbolic ASTM log notation (``[STX]``, ``<CR>``) to wire bytes and back, for replaying logs."""

from __future__ import annotations

import re
from collections.abc import Callable

from drivers.errors import RemoteProtocolError

#: The control characters vendor manuals and session logs spell out by name.
CONTROL_NAMES: dict[str, int] = {
    "NUL": 0x00,
    "SOH": 0x01,
    "STX": 0x02,
    "ETX": 0x03,
    "EOT": 0x04,
    "ENQ": 0x05,
    "ACK": 0x06,
    "LF": 0x0A,
    "CR": 0x0D,
    "DLE": 0x10,
    "NAK": 0x15,
    "SYN": 0x16,
    "ETB": 0x17,
}
_NAME_OF = {code: name for name, code in CONTROL_NAMES.items()}
_TOKEN = re.compile(r"\[(%s)\]|<(%s)>" % (("|".join(CONTROL_NAMES),) * 2))
_REPLY_LINE = re.compile(r"[\s\-]*(?:(?:\[(?:ACK|NAK)\]|<(?:ACK|NAK)>)[\s\-]*)+")


def is_reply_line(line: str) -> bool:
    """True for a log line holding only ACK/NAK tokens (and dashes): the receiver's answers.

    Session logs (Snibe Maglumi, Mindray BS-240, Beckman Access 2) interleave the host's
    ``- [ACK]`` lines with what the instrument sent; dropping them leaves the instrument's bytes.
    """
    return _REPLY_LINE.fullmatch(line) is not None


def symbolic_to_bytes(
    text: str,
    *,
    drop_line: Callable[[str], bool] | None = is_reply_line,
    keep_line_breaks: bool = False,
    encoding: str = "latin-1",
) -> bytes:
    """Turn a symbolic log into the bytes it describes.

    Physical line breaks in such logs are where the logger printed one read; they are not data
    (a ``[CR]`` token is), so they are dropped unless ``keep_line_breaks``. Lines for which
    ``drop_line`` is true (by default the receiver's ACK/NAK lines) are left out.
    """
    # Only CR LF and LF are log line breaks (str.splitlines would also split at VT, FF, FS...).
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if drop_line is not None:
        lines = [line for line in lines if not drop_line(line)]
    joined = ("\n" if keep_line_breaks else "").join(lines)
    out = bytearray()
    position = 0
    for match in _TOKEN.finditer(joined):
        out += _encode(joined[position : match.start()], encoding)
        out.append(CONTROL_NAMES[match.group(1) or match.group(2)])
        position = match.end()
    out += _encode(joined[position:], encoding)
    return bytes(out)


def bytes_to_symbolic(data: bytes, *, encoding: str = "latin-1") -> str:
    """Spell control characters as ``[NAME]`` (the inverse of ``symbolic_to_bytes``, one line)."""
    return "".join(
        f"[{_NAME_OF[b]}]" if b in _NAME_OF else bytes((b,)).decode(encoding, "replace")
        for b in data
    )


def _encode(text: str, encoding: str) -> bytes:
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise RemoteProtocolError(
            f"log text is not {encoding}: {exc}", field="encoding", data=text.encode()
        ) from exc
