"""Original-mode HL7 acknowledgements: build an ACK for any message, even a broken one; read one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from drivers.errors import LocalProtocolError, RemoteProtocolError
from drivers.protocols.hl7.message import (
    DEFAULT_DELIMITERS,
    Delimiters,
    Segment,
    decode_message,
    detect_charset,
    escape,
    format_ts,
    normalise_segments,
)

__all__ = [
    "ACK_CODES",
    "ERROR_CODES",
    "Ack",
    "MshFields",
    "build_ack",
    "parse_ack",
    "read_msh",
]

#: HL7 table 0008: original mode (AA, AE, AR) and enhanced mode commit codes (CA, CE, CR).
ACK_CODES = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})

#: HL7 table 0357, message error condition codes, for ERR-3 (ERR-1 before v2.5).
ERROR_CODES = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "104": "Value too long",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}

_LOCATION = re.compile(r"([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+))?", re.ASCII)
_VERSION = re.compile(r"2\.\d+(?:\.\d+)?", re.ASCII)
_MSA3_MAX = 80  # MSA-3 is ST(80); the full text goes to ERR-8
# C0 controls other than CR (the segment terminator) and TAB become spaces: a VT or FS inside an
# ACK would break its MLLP framing.
_CONTROLS = {c: " " for c in range(32) if c not in (0x09, 0x0D)} | {0x7F: " "}


@dataclass(frozen=True, slots=True)
class Ack:
    """What an acknowledgement says."""

    code: str  # MSA-1: AA, AE, AR (or CA, CE, CR)
    acked_control_id: str  # MSA-2: the MSH-10 of the message acknowledged
    text: str  # MSA-3, else ERR-8, else the ERR error code's text
    control_id: str  # MSH-10 of the ACK itself
    error_code: str = ""  # ERR-3.1 (v2.5+) or ERR-1.4.1 (v2.3/2.4)
    version: str = ""  # MSH-12

    @property
    def accepted(self) -> bool:
        """True for AA and CA."""
        return self.code in ("AA", "CA")


@dataclass(frozen=True, slots=True)
class MshFields:
    """The MSH of a message read by plain splitting, for messages too broken for a full parse.

    ``fields[n]`` is MSH-n exactly as sent (escaped); ``fields[1]`` is the field separator.
    ``delimiters_valid`` is False when MSH-2 was unusable and defaults stand in.
    """

    delimiters: Delimiters
    delimiters_valid: bool
    fields: tuple[str, ...]

    def raw(self, n: int) -> str:
        """MSH-n as sent, or ""."""
        return self.fields[n] if 0 <= n < len(self.fields) else ""

    def raw_component(self, n: int, comp: int) -> str:
        """Component ``comp`` of the first repetition of MSH-n, as sent."""
        d = self.delimiters
        first = self.raw(n).split(d.repetition, 1)[0]
        parts = first.split(d.component)
        return parts[comp - 1] if comp <= len(parts) else ""

    @property
    def control_id(self) -> str:
        """MSH-10 as sent."""
        return self.raw(10)

    @property
    def trigger_event(self) -> str:
        """MSH-9.2 as sent."""
        return self.raw_component(9, 2)

    @property
    def version(self) -> str:
        """MSH-12.1 as sent."""
        return self.raw_component(12, 1)


def read_msh(message: bytes) -> MshFields | None:
    """Find the first MSH segment (leading junk lines are skipped) and split it; None if absent."""
    for line in normalise_segments(decode_message(message)):
        line = line.lstrip("\ufeff \t")
        if line.startswith("MSH") and len(line) > 3:
            break
    else:
        return None
    sep = line[3]
    if not sep.isprintable() or sep.isalnum() or sep.isspace():
        return None
    parts = line.split(sep)
    enc = parts[1] if len(parts) > 1 else ""
    try:
        delimiters, valid = Delimiters.from_msh(sep, enc), True
    except RemoteProtocolError:
        delimiters, valid = Delimiters(field=sep), False
        if sep in DEFAULT_DELIMITERS.encoding_characters:
            return None
    return MshFields(delimiters, valid, ("MSH", sep, *parts[1:]))


def _error_location(location: str) -> list[str]:
    """``"OBX[3]-5"`` (the notation of ``ProtocolError.field``) -> ["OBX", "3", "5"]."""
    m = _LOCATION.fullmatch(location.strip())
    if m is None:
        return []
    segment, occurrence, position = m.groups()
    return [segment, occurrence or "1", position or ""]


def build_ack(
    message: bytes,
    code: str,
    *,
    control_id: str,
    now: datetime,
    text: str = "",
    sending_application: str = "TRYGG",
    sending_facility: str = "",
    error_code: str = "",
    error_location: str = "",
    error_severity: str = "E",
) -> bytes:
    """Build an original-mode ACK (HL7 v2.5.1 section 2.9.2) for ``message``.

    MSH-9 is ``ACK^<trigger>^ACK``, MSH-12 and the delimiters are copied from the message,
    MSA-2 is the message's MSH-10. The message's MSH is read by splitting, so a partly broken
    message (bad segments, bad fields, even junk before the MSH) still gets an answer; with no
    usable MSH at all the ACK falls back to standard delimiters, v2.5.1 and an empty MSA-2.
    ``error_code`` (table 0357, e.g. "101") adds an ERR segment; ``error_location`` takes the
    ``ProtocolError.field`` notation (``"OBX[3]-5"``). The result is not MLLP-framed.
    """
    if code not in ACK_CODES:
        raise LocalProtocolError(f"{code!r} is not an acknowledgement code", field="MSA-1")
    if not control_id:
        raise LocalProtocolError("an ACK needs its own control ID", field="MSH-10")
    msh = read_msh(message)
    if msh is not None and msh.delimiters_valid:
        d = msh.delimiters
        receiving_app, receiving_fac = msh.raw(3), msh.raw(4)
        acked = msh.control_id
        trigger = msh.trigger_event
        processing = msh.raw_component(11, 1)
        version = msh.version
    elif msh is not None:
        # MSH-2 is unusable: keep only whole fields, escaped as plain text.
        d = DEFAULT_DELIMITERS
        receiving_app, receiving_fac = escape(msh.raw(3), d), escape(msh.raw(4), d)
        acked = escape(msh.control_id, d)
        trigger = processing = version = ""
    else:
        d = DEFAULT_DELIMITERS
        receiving_app = receiving_fac = acked = trigger = processing = version = ""
    if not _VERSION.fullmatch(version):
        version = "2.5.1"
    c = d.component
    msh_segment = [
        "MSH",
        d.encoding_characters,
        escape(sending_application, d),
        escape(sending_facility, d),
        receiving_app,
        receiving_fac,
        format_ts(now),
        "",
        f"ACK{c}{trigger}{c}ACK" if trigger else "ACK",
        escape(control_id, d),
        processing or "P",
        version,
    ]
    charset = detect_charset(message) if msh is not None else "utf-8"
    if charset == "latin-1":
        msh_segment += ["", "", "", "", "", "8859/1"]  # MSH-18: say how the ACK is encoded
    msa = ["MSA", code, acked]
    if text:
        msa.append(escape(text[:_MSA3_MAX], d))
    segments = [d.field.join(msh_segment), d.field.join(msa)]
    if error_code:
        description = ERROR_CODES.get(error_code, "")
        described = f"{escape(error_code, d)}{c}{description}{c}HL70357"
        location = _error_location(error_location)
        if tuple(int(p) for p in version.split(".")[:2]) >= (2, 5):
            severity = escape(error_severity, d)
            err = ["ERR", "", c.join(location), described, severity, "", "", ""]
            if text:
                err.append(escape(text, d))
        else:  # v2.3/v2.4: ERR-1 is ELD, segment^sequence^field^code&text&table
            s = d.subcomponent
            eld = [*(location or ["", "", ""]), s.join(described.split(c))]
            err = ["ERR", c.join(eld)]
        segments.append(d.field.join(err))
    text_out = "\r".join(segments).translate(_CONTROLS) + "\r"
    return text_out.encode(charset, "replace")


def parse_ack(data: bytes) -> Ack:
    """Read an acknowledgement (CR, LF or CRLF between segments).

    Raises ``RemoteProtocolError`` naming the field: ``"MSH"`` / ``"MSH-1"`` / ``"MSH-2"`` when
    there is no usable header, ``"MSH-9"`` when it is not an ACK, ``"MSA"`` when the MSA segment
    is missing, ``"MSA-1"`` when the acknowledgement code is not one of table 0008.
    """
    lines = normalise_segments(decode_message(data))
    first = lines[0].lstrip("\ufeff \t") if lines else ""
    if not first.startswith("MSH") or len(first) < 4:
        raise RemoteProtocolError(
            "an acknowledgement must start with an MSH segment", field="MSH", data=data
        )
    sep = first[3]
    end = first.find(sep, 4)
    d = Delimiters.from_msh(sep, first[4:] if end < 0 else first[4:end])
    msh = Segment(first, 1, d)
    message_code = msh.component(9, 1)
    if message_code != "ACK":
        raise RemoteProtocolError(
            f"MSH-9 is {msh.text(9)!r}, not an ACK", field="MSH-9", data=first.encode()
        )
    msa = err = None
    for line in lines[1:]:
        name = line[:3]
        if len(line) > 3 and line[3] != sep:
            continue
        if name == "MSA" and msa is None:
            msa = Segment(line, 1, d)
        elif name == "ERR" and err is None:
            err = Segment(line, 1, d)
    if msa is None:
        raise RemoteProtocolError("the acknowledgement has no MSA segment", field="MSA", data=data)
    code = msa.component(1).upper()
    if code not in ACK_CODES:
        raise RemoteProtocolError(
            f"acknowledgement code {msa.component(1)!r} is not one of AA, AE, AR, CA, CE, CR",
            field="MSA-1",
            data=msa.raw.encode("utf-8", "replace"),
        )
    text = msa.text(3)
    error_code = ""
    if err is not None:
        error_code = err.component(3, 1) or err.sub(1, 4, 1)
        text = text or err.text(8) or err.component(3, 2) or err.sub(1, 4, 2)
    return Ack(
        code=code,
        acked_control_id=msa.component(2),
        text=text,
        control_id=msh.component(10),
        error_code=error_code,
        version=msh.component(12),
    )
