"""HL7 v2 message text: delimiters, escaping, timestamps, and result messages -> observations.

Policy is the caller's: the zone of timestamps sent without an offset, and which observations
are quality control (``QcClassifier``), are arguments, supplied by the analyser driver.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

from drivers.errors import RemoteProtocolError
from drivers.model import Method, Observation

__all__ = [
    "DEFAULT_DELIMITERS",
    "RESULT_MESSAGE_TYPES",
    "Delimiters",
    "ParsedMessage",
    "QcClassifier",
    "QcEvidence",
    "Segment",
    "Tree",
    "decode_message",
    "detect_charset",
    "escape",
    "format_ts",
    "normalise_segments",
    "parse_observations",
    "parse_ts",
    "split_message",
    "unescape",
]

#: Message code -> trigger events this module reads results from.
RESULT_MESSAGE_TYPES: dict[str, frozenset[str]] = {
    "ORU": frozenset({"R01", "R30", "R31", "R32"}),
    "OUL": frozenset({"R21", "R22", "R23", "R24"}),
    "ORF": frozenset({"R04"}),
}

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_TS = re.compile(
    r"(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,4}))?)?)?)?)?)?"
    r"(?:([+-])(\d{2})(\d{2}))?",
    re.ASCII,
)
_CODED_TYPES = frozenset({"CE", "CWE", "CNE", "CF"})
_FORMATTING = {
    ".br": "\n",
    ".sp": "\n",
    ".ce": "\n",
    ".fi": "",
    ".nf": "",
    ".in": "",
    ".ti": "",
    ".sk": " ",
    "H": "",
    "N": "",
}


# --------------------------------------------------------------------------- encoding helpers


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The separators a message declares in MSH-1 and MSH-2 (HL7 v2.5.1 section 2.5.4)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""

    @property
    def encoding_characters(self) -> str:
        """MSH-2 as it is written on the wire."""
        return self.component + self.repetition + self.escape + self.subcomponent + self.truncation

    @classmethod
    def from_msh(cls, field_separator: str, encoding_characters: str) -> Delimiters:
        """Validate MSH-1/MSH-2; raise ``RemoteProtocolError`` naming the field when unusable."""
        if len(field_separator) != 1 or not _is_delimiter(field_separator):
            raise RemoteProtocolError(
                f"field separator {field_separator!r} is not a printable non-alphanumeric",
                field="MSH-1",
                data=field_separator.encode("utf-8", "replace"),
            )
        enc = encoding_characters
        chars = field_separator + enc
        if (
            len(enc) not in (4, 5)
            or not all(_is_delimiter(c) for c in enc)
            or len(set(chars)) != len(chars)
        ):
            raise RemoteProtocolError(
                f"encoding characters {enc!r} must be 4 (or 5) distinct non-alphanumeric "
                "characters, different from the field separator",
                field="MSH-2",
                data=enc.encode("utf-8", "replace"),
            )
        return cls(field_separator, enc[0], enc[1], enc[2], enc[3], enc[4:])


DEFAULT_DELIMITERS = Delimiters()


def _is_delimiter(char: str) -> bool:
    return char.isprintable() and not char.isalnum() and not char.isspace()


@functools.cache
def _escape_table(d: Delimiters) -> dict[int, str]:
    """``str.translate`` table for ``escape``: each delimiter to its escape sequence."""
    e = d.escape
    table = {
        ord(e): f"{e}E{e}",
        ord(d.field): f"{e}F{e}",
        ord(d.component): f"{e}S{e}",
        ord(d.subcomponent): f"{e}T{e}",
        ord(d.repetition): f"{e}R{e}",
    }
    if d.truncation:
        table[ord(d.truncation)] = f"{e}P{e}"
    return table


_C0_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def escape(
    value: str, delimiters: Delimiters = DEFAULT_DELIMITERS, *, hex_controls: bool = False
) -> str:
    r"""Escape a plain text value for one HL7 component (``\F\ \S\ \T\ \R\ \E\``, line breaks).

    Line breaks (CR, LF, CRLF) become ``\.br\``. With ``hex_controls`` (FT text) the other C0
    controls and DEL become ``\Xhh\`` (section 2.7.4); without, they are left as they are.
    """
    out = value.translate(_escape_table(delimiters))  # one pass: no sequence is escaped twice
    if "\r" in out or "\n" in out:
        e = delimiters.escape
        out = out.replace("\r\n", "\n").replace("\r", "\n").replace("\n", f"{e}.br{e}")
    if hex_controls and _C0_CONTROL.search(out):
        e = delimiters.escape
        out = _C0_CONTROL.sub(lambda m: f"{e}X{ord(m.group()):02X}{e}", out)
    return out


def unescape(value: str, delimiters: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Undo HL7 escape sequences (section 2.7); unknown or broken sequences are kept as sent."""
    e = delimiters.escape
    if not e or e not in value:
        return value
    out: list[str] = []
    i = 0
    while True:
        start = value.find(e, i)
        if start < 0:
            out.append(value[i:])
            break
        end = value.find(e, start + 1)
        if end < 0:
            out.append(value[i:])
            break
        out.append(value[i:start])
        replacement = _unescape_sequence(value[start + 1 : end], delimiters)
        out.append(value[start : end + 1] if replacement is None else replacement)
        i = end + 1
    return "".join(out)


def _unescape_sequence(seq: str, d: Delimiters) -> str | None:
    simple = {
        "F": d.field,
        "S": d.component,
        "T": d.subcomponent,
        "R": d.repetition,
        "E": d.escape,
        "P": d.truncation or None,
    }
    if seq in simple:
        return simple[seq]
    if seq in _FORMATTING:
        return _FORMATTING[seq]
    if seq[:3] in _FORMATTING and seq[3:].lstrip("+-").isdigit():
        return _FORMATTING[seq[:3]]
    if seq.startswith("X") and len(seq) > 1 and len(seq) % 2 == 1:
        try:
            return bytes.fromhex(seq[1:]).decode("latin-1")
        except ValueError:
            return None
    if seq.startswith(("C", "M")) and seq[1:].isalnum():
        return ""  # character-set switch: we decode the whole message with one charset
    return None


def parse_ts(value: str, *, tz: tzinfo, field: str = "TS") -> datetime:
    """Parse an HL7 TS/DTM (``YYYY[MM[DD[HH[MM[SS[.S..]]]]]][+/-ZZZZ]``) into an aware UTC datetime.

    Without an offset the time is local time in ``tz`` (the sender's zone: the caller's policy).
    """
    text = value.strip()
    m = _TS.fullmatch(text)
    if m is None:
        raise RemoteProtocolError(
            # the value in ``data`` only: quoted unless it was read from a patient segment
            "not an HL7 timestamp",
            field=field,
            data=value.encode("utf-8", "replace"),
        )
    year, month, day, hour, minute, second, frac, sign, oh, om = m.groups()
    try:
        micro = int((frac or "0").ljust(6, "0"))
        zone: tzinfo = tz
        if sign:
            if int(oh) > 23 or int(om) > 59:
                raise ValueError("offset out of range")
            delta = timedelta(hours=int(oh), minutes=int(om))
            zone = timezone(-delta if sign == "-" else delta)
        local = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
            tzinfo=zone,
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise RemoteProtocolError(
            f"not a valid date and time ({exc})",
            field=field,
            data=value.encode("utf-8", "replace"),
        ) from exc


def format_ts(when: datetime) -> str:
    """Format a datetime as an HL7 DTM with seconds, and with its UTC offset when it is aware."""
    # f-string, not strftime: faster, and %Y does not pad years before 1000 to four digits
    text = (
        f"{when.year:04d}{when.month:02d}{when.day:02d}"
        f"{when.hour:02d}{when.minute:02d}{when.second:02d}"
    )
    offset = when.utcoffset()
    if offset is None:
        return text
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return f"{text}{sign}{minutes // 60:02d}{minutes % 60:02d}"


def normalise_segments(text: str) -> list[str]:
    """Split message text into segments on CR, LF or CRLF, dropping blank lines."""
    lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    return [line for line in lines if line.strip()]


def detect_charset(raw: bytes) -> str:
    """The Python codec for message bytes: Latin-1 when MSH-18 says 8859/1, else UTF-8 if the
    bytes are valid UTF-8, else Latin-1 (which decodes any byte, so nothing is lost)."""
    head = raw[:512].split(b"\r", 1)[0].split(b"\n", 1)[0]
    if b"8859/1" in head:
        return "latin-1"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def decode_message(raw: bytes) -> str:
    """Decode message bytes with the codec ``detect_charset`` picks; never fails."""
    return raw.decode(detect_charset(raw))


# --------------------------------------------------------------------------- parsed structure

Tree = list[list[list[str]]]
"""One field: repetitions -> components -> subcomponents, still escaped as sent."""

_EMPTY: Tree = [[[""]]]


class Segment:
    """One segment, split into fields at once and into components only when asked (lazily).

    Field numbers are HL7's: ``field(3)`` of a PID is PID-3; for MSH, ``field(1)`` is the field
    separator and ``field(2)`` the encoding characters, as in the standard. Values come back
    unescaped and stripped.
    """

    __slots__ = ("_fields", "_trees", "d", "name", "occurrence", "raw")

    def __init__(self, raw: str, occurrence: int, d: Delimiters) -> None:
        self.raw = raw
        self.name = raw[:3]
        self.occurrence = occurrence
        self.d = d
        parts = raw.split(d.field)
        if self.name == "MSH":
            parts = ["MSH", d.field, *parts[1:]]
        self._fields = parts
        self._trees: list[Tree | None] = [None] * len(parts)

    @property
    def field_count(self) -> int:
        """The number of the last field present."""
        return len(self._fields) - 1

    def where(self, n: int) -> str:
        """This segment's field ``n`` in error notation: ``OBX[3]-5`` is field 5 of the 3rd OBX."""
        return f"{self.name}[{self.occurrence}]-{n}"

    def raw_field(self, n: int) -> str:
        """Field ``n`` exactly as sent (escaped), or "" when absent."""
        return self._fields[n] if 0 <= n < len(self._fields) else ""

    def tree(self, n: int) -> Tree:
        """Field ``n`` split into repetitions, components and subcomponents (escaped)."""
        if n < 0 or n >= len(self._fields):
            return _EMPTY
        tree = self._trees[n]
        if tree is None:
            text = self._fields[n]
            d = self.d
            if self.name == "MSH" and n <= 2:
                tree = [[[text]]]
            elif d.component not in text and d.subcomponent not in text:
                tree = [[[r]] for r in text.split(d.repetition)]
            else:
                tree = [
                    [c.split(d.subcomponent) for c in r.split(d.component)]
                    for r in text.split(d.repetition)
                ]
            self._trees[n] = tree
        return tree

    def repetitions(self, n: int) -> int:
        """How many repetitions field ``n`` has (1 for an empty or absent field)."""
        return len(self.tree(n))

    def _plain(self, n: int) -> str | None:
        """Field ``n`` stripped if it has no delimiter or escape (the common case), else None."""
        text = self._fields[n] if 0 <= n < len(self._fields) else ""
        d = self.d
        if (
            d.component in text
            or d.repetition in text
            or d.subcomponent in text
            or d.escape in text
        ) and not (n <= 2 and self.name == "MSH"):
            return None
        return text.strip()

    def component(self, n: int, comp: int = 1, rep: int = 1) -> str:
        """A component, its subcomponents joined by the subcomponent separator."""
        plain = self._plain(n)
        if plain is not None:
            return plain if comp == 1 and rep == 1 else ""
        reps = self.tree(n)
        if rep > len(reps) or comp > len(reps[rep - 1]):
            return ""
        subs = reps[rep - 1][comp - 1]
        if len(subs) == 1:
            return unescape(subs[0], self.d).strip()
        return self.d.subcomponent.join(unescape(s, self.d) for s in subs).strip()

    def components(self, n: int, rep: int = 1) -> list[str]:
        """The components of one repetition (subcomponents joined), unescaped and stripped."""
        plain = self._plain(n)
        if plain is not None:
            return [plain] if plain and rep == 1 else []
        reps = self.tree(n)
        if rep > len(reps):
            return []
        d = self.d
        return [
            unescape(subs[0], d).strip()
            if len(subs) == 1
            else d.subcomponent.join(unescape(x, d) for x in subs).strip()
            for subs in reps[rep - 1]
        ]

    def sub(self, n: int, comp: int = 1, sub: int = 1, rep: int = 1) -> str:
        """One subcomponent."""
        reps = self.tree(n)
        if rep > len(reps) or comp > len(reps[rep - 1]):
            return ""
        subs = reps[rep - 1][comp - 1]
        return unescape(subs[sub - 1], self.d).strip() if sub <= len(subs) else ""

    def rep_text(self, n: int, rep: int = 1) -> str:
        """One repetition as text, trailing empty components dropped."""
        comps = self.components(n, rep)
        while comps and not comps[-1]:
            comps.pop()
        return self.d.component.join(comps)

    def text(self, n: int) -> str:
        """The whole field as text, empty repetitions and trailing empty components dropped."""
        if not self.raw_field(n):
            return ""
        parts = (self.rep_text(n, r) for r in range(1, self.repetitions(n) + 1))
        return self.d.repetition.join(p for p in parts if p)


def split_message(raw: bytes) -> list[Segment]:
    """Decode, check the outline (MSH first, delimiters, segment IDs) and split into segments.

    Accepts CR, LF or CRLF between segments. Raises ``RemoteProtocolError`` naming the field.
    """
    text = decode_message(raw)
    lines = normalise_segments(text)
    if not lines:
        raise RemoteProtocolError("empty message", field="MSH", data=raw)
    first = lines[0].lstrip("\ufeff \t")
    lines[0] = first
    if not first.startswith("MSH"):
        raise RemoteProtocolError(
            # the segment ID only, bytes not quoted: a line that is no MSH may be a patient segment
            f"a message must start with an MSH segment, not {first[:3]!r}",
            field="MSH",
            data=first.encode("utf-8", "replace"),
            quote=False,
        )
    if len(first) < 4:
        raise RemoteProtocolError(
            "MSH segment has no field separator", field="MSH-1", data=first.encode()
        )
    sep = first[3]
    end = first.find(sep, 4)
    delims = Delimiters.from_msh(sep, first[4:] if end < 0 else first[4:end])
    counts: dict[str, int] = {}
    segments: list[Segment] = []
    for i, line in enumerate(lines, start=1):
        name = line[:3]
        if not _SEGMENT_ID.fullmatch(name) or (len(line) > 3 and line[3] != sep):
            # bytes not quoted: a line that does not read may be a damaged PID (a name, an ID)
            what = f"line {i} ({name})" if _SEGMENT_ID.fullmatch(name) else f"line {i}"
            raise RemoteProtocolError(
                f"{what} is not an HL7 segment (expected a segment ID like OBX then {sep!r})",
                field=f"segment[{i}]",
                data=line.encode("utf-8", "replace"),
                quote=False,
            )
        if name == "MSH" and i > 1:
            raise RemoteProtocolError(
                "a second MSH inside one message (batches are not supported)",
                field=f"segment[{i}]",
                data=line.encode("utf-8", "replace"),
            )
        counts[name] = occurrence = counts.get(name, 0) + 1
        segments.append(Segment(line, occurrence, delims))
    return segments


# --------------------------------------------------------------------------- the parser


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Header facts of one inbound result message and the observations it carries."""

    control_id: str
    message_type: str  # MSH-9.1^MSH-9.2, e.g. "ORU^R01"
    version: str
    sending_application: str = ""
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""
    message_structure: str = ""  # MSH-9.3, e.g. "ORU_R01", when sent
    processing_id: str = ""
    sent_at: datetime | None = None
    observations: tuple[Observation, ...] = ()


@dataclass(frozen=True, slots=True)
class QcEvidence:
    """What a message says about one observation that may mark it as quality control."""

    #: PID-3 (else PID-2) of the patient the observation follows; "" when none
    patient_id: str
    #: the observation's specimen ID as mapped (SPM-2, else OBR-3, else OBR-2)
    specimen_id: str
    #: SPM-11 specimen role (identifier, text) of each SPM of its order and specimen groups
    specimen_roles: tuple[tuple[str, str], ...]
    #: the non-empty OBR-4 service and SPM-4 specimen type texts of those groups
    descriptions: tuple[str, ...]


QcClassifier = Callable[[QcEvidence], bool]
"""Decides from the evidence whether an observation is QC: the analyser driver's policy."""


class _Group:
    """Facts shared by the observations of one order (OBR) or one specimen (SPM) group."""

    __slots__ = ("obr_time", "order_ids", "roles", "service_text", "specimen_id", "specimen_text")

    def __init__(self) -> None:
        self.specimen_id = ""
        self.order_ids: tuple[str, str] = ("", "")  # OBR-3 filler, OBR-2 placer
        self.obr_time: datetime | None = None
        self.service_text = ""
        self.specimen_text = ""
        self.roles: tuple[tuple[str, str], ...] = ()  # SPM-11 (identifier, text) per SPM


class _Pending:
    """An observation being assembled; groups may learn their specimen after the OBX."""

    __slots__ = ("comments", "fields", "order", "patient_id", "specimen")

    def __init__(
        self, fields: dict[str, Any], order: _Group | None, specimen: _Group | None, patient: str
    ) -> None:
        self.fields = fields
        self.order = order
        self.specimen = specimen
        self.patient_id = patient
        self.comments: list[str] = []


def parse_observations(
    raw: bytes, instrument_id: str, *, tz: tzinfo, qc: QcClassifier
) -> ParsedMessage:
    """Parse one result message (ORU^R01/R30/R31/R32, OUL^R21-R24, ORF^R04).

    Any bytes either parse or raise ``RemoteProtocolError`` whose ``field`` says where
    (``"MSH-9"``, ``"OBX[3]-14"``: the third OBX segment, field 14) and whose ``data`` holds the
    offending bytes. Timestamps without an offset are read as local time in ``tz``; ``qc``
    decides which observations are quality control.
    """
    segments = split_message(raw)
    msh = segments[0]
    code, trigger = msh.component(9, 1), msh.component(9, 2)
    if code not in RESULT_MESSAGE_TYPES or trigger not in RESULT_MESSAGE_TYPES[code]:
        raise RemoteProtocolError(
            f"{code}^{trigger} is not a result message this parser reads",
            field="MSH-9",
            data=msh.raw.encode("utf-8", "replace"),
        )
    control_id = msh.component(10)
    if not control_id:
        raise RemoteProtocolError(
            "MSH-10 (message control ID) is empty",
            field="MSH-10",
            data=msh.raw.encode("utf-8", "replace"),
        )
    version = msh.component(12)
    if version and not version.startswith("2."):
        raise RemoteProtocolError(
            f"version {version!r} is not HL7 v2", field="MSH-12", data=version.encode()
        )
    sent_text = msh.component(7)
    sent_at = parse_ts(sent_text, tz=tz, field="MSH-7") if sent_text else None

    oul = code == "OUL"
    pending: list[_Pending] = []
    patient = ""
    order: _Group | None = None
    specimen: _Group | None = None
    last_obx: _Pending | None = None
    for seg in segments[1:]:
        if seg.name == "NTE":
            if last_obx is not None:
                note = "\n".join(
                    t for r in range(1, seg.repetitions(3) + 1) if (t := seg.rep_text(3, r))
                )
                if note:
                    last_obx.comments.append(note)
            continue
        last_obx = None
        if seg.name == "PID":
            patient = seg.component(3, 1) or seg.component(2, 1)
            order = specimen = None
        elif seg.name == "OBR":
            order = _Group()
            order.order_ids = (seg.sub(3, 1), seg.sub(2, 1))
            order.service_text = " ".join(
                seg.component(4, c) for c in (1, 2, 4, 5) if seg.component(4, c)
            )
            for n in (7, 8):  # observation date/time, else its end (some fixtures shift OBR)
                obr_time = seg.component(n)
                if obr_time:
                    order.obr_time = parse_ts(obr_time, tz=tz, field=seg.where(n))
                    break
        elif seg.name == "SPM":
            group = _Group()
            group.specimen_id = seg.sub(2, 1, 1) or seg.sub(2, 2, 1)
            group.specimen_text = " ".join(
                seg.component(4, c) for c in (1, 2) if seg.component(4, c)
            )
            role = (seg.component(11, 1), seg.component(11, 2))
            group.roles = (role,) if any(role) else ()
            if oul or order is None:
                # OUL^R22: SPM opens a specimen group that the following OBR groups belong to.
                specimen = group
                order = None
            else:
                # ORU^R01 v2.5+: SPM follows the OBX of its OBR group.
                order.specimen_id = order.specimen_id or group.specimen_id
                order.specimen_text = order.specimen_text or group.specimen_text
                order.roles += group.roles
        elif seg.name == "OBX":
            last_obx = _Pending(_obx_fields(seg, tz), order, specimen, patient)
            pending.append(last_obx)

    # the OBX of one group share their evidence: the classifier is asked once per group
    decided: dict[tuple[_Group | None, _Group | None, str], bool] = {}
    observations = tuple(_finish(p, instrument_id, qc, decided) for p in pending)
    return ParsedMessage(
        control_id=control_id,
        message_type=f"{code}^{trigger}",
        version=version,
        sending_application=msh.component(3, 1) or msh.component(3, 2),
        sending_facility=msh.component(4, 1) or msh.component(4, 2),
        receiving_application=msh.component(5, 1) or msh.component(5, 2),
        receiving_facility=msh.component(6, 1) or msh.component(6, 2),
        message_structure=msh.component(9, 3),
        processing_id=msh.component(11, 1),
        sent_at=sent_at,
        observations=observations,
    )


def _at(items: list[str], i: int) -> str:
    return items[i] if i < len(items) else ""


def _simple(seg: Segment) -> bool:
    """No repetition, subcomponent or escape character anywhere in the segment (the usual
    OBX): every field is plain components, and ``_obx_fields_simple`` reads it directly."""
    d, raw = seg.d, seg.raw
    return d.repetition not in raw and d.subcomponent not in raw and d.escape not in raw


class _SimpleFields:
    """Field access for a ``_simple`` OBX: plain splits of the raw fields, nothing to undo."""

    __slots__ = ("_cs", "_fields")

    def __init__(self, seg: Segment) -> None:
        self._fields = seg._fields
        self._cs = seg.d.component

    def _raw(self, n: int) -> str:
        return self._fields[n] if n < len(self._fields) else ""

    def first(self, n: int) -> str:
        text = self._raw(n)
        return (text.split(self._cs, 1)[0] if self._cs in text else text).strip()

    def comps(self, n: int) -> list[str]:
        text = self._raw(n)
        if self._cs not in text:
            text = text.strip()
            return [text] if text else []
        return [c.strip() for c in text.split(self._cs)]

    def whole(self, n: int) -> str:
        parts = self.comps(n)
        while parts and not parts[-1]:
            parts.pop()
        return self._cs.join(parts)

    def firsts(self, n: int) -> list[str]:
        value = self.first(n)
        return [value] if value else []

    def value(self, n: int, value_type: str) -> str:
        return _value(self.comps(n), value_type, self._cs)


class _GeneralFields:
    """Field access for any OBX: repetitions, subcomponents and escapes (``Segment``'s)."""

    __slots__ = ("_seg",)

    def __init__(self, seg: Segment) -> None:
        self._seg = seg

    def first(self, n: int) -> str:
        return self._seg.component(n)

    def comps(self, n: int) -> list[str]:
        return self._seg.components(n)

    def whole(self, n: int) -> str:
        return self._seg.text(n)

    def firsts(self, n: int) -> list[str]:
        seg = self._seg
        return [e for r in range(1, seg.repetitions(n) + 1) if (e := seg.component(n, 1, r))]

    def value(self, n: int, value_type: str) -> str:
        seg = self._seg
        values = [
            _value(seg.components(n, r), value_type, seg.d.component)
            for r in range(1, seg.repetitions(n) + 1)
        ]
        return "~".join(values) if any(values) else ""


def _obx_fields_simple(seg: Segment, tz: tzinfo) -> dict[str, Any]:
    """``_obx_fields`` for a ``_simple`` segment, without the general machinery (a test holds
    the two readers to the same output)."""
    return _read_obx(_SimpleFields(seg), seg, tz)


def _obx_fields_general(seg: Segment, tz: tzinfo) -> dict[str, Any]:
    return _read_obx(_GeneralFields(seg), seg, tz)


def _read_obx(read: _SimpleFields | _GeneralFields, seg: Segment, tz: tzinfo) -> dict[str, Any]:
    value_type = read.first(2).upper()
    ident = read.comps(3)
    if not _at(ident, 0):
        # Mindray and others send the code in the alternate identifier: ^^^WBC^WHITE BLOOD CELL
        ident = ident[3:]
    code, name, system = _at(ident, 0), _at(ident, 1), _at(ident, 2)
    if not code:
        raise RemoteProtocolError(
            "observation identifier (OBX-3) is empty",
            field=seg.where(3),
            data=seg.raw.encode("utf-8", "replace"),
        )
    extra: list[tuple[str, str]] = []
    if value_type in _CODED_TYPES:
        text = _at(read.comps(5), 1)
        if text:
            extra.append(("value_text", text))
    for key, val in (("set_id", read.first(1)), ("sub_id", read.whole(4)), ("coding", system)):
        if val:
            extra.append((key, val))
    when_text = read.first(14)
    method_text = " ".join(c for c in read.comps(17)[:2] if c)
    if method_text:
        extra.append(("method_text", method_text))
    equipment = read.firsts(18)
    if len(equipment) > 1:
        extra.append(("equipment", "~".join(equipment)))
    unit = read.comps(6)
    operator = read.comps(16)
    return {
        "test_code": code,
        "test_name": name,
        "value_type": value_type or "ST",
        "value": read.value(5, value_type),
        "unit": _at(unit, 0) or _at(unit, 1),
        "reference_range": read.whole(7),
        "abnormal_flags": tuple(read.firsts(8)),
        "result_status": read.first(11),
        "performed_at": _cached_ts(when_text, tz, seg.where(14)) if when_text else None,
        "operator_id": _at(operator, 0) or _at(operator, 1),
        "method": _method(method_text),
        "instrument_serial": equipment[0] if equipment else "",
        "extra": tuple(extra),
    }


@functools.lru_cache(maxsize=4096)
def _ts_cache(text: str, tz: tzinfo) -> datetime:
    return parse_ts(text, tz=tz)


def _cached_ts(text: str, tz: tzinfo, field: str) -> datetime:
    """``parse_ts`` with a cache: the OBX of one run share their timestamps. Errors are not
    cached, and carry the caller's field."""
    try:
        return _ts_cache(text, tz)
    except RemoteProtocolError:
        return parse_ts(text, tz=tz, field=field)


def _obx_fields(seg: Segment, tz: tzinfo) -> dict[str, Any]:
    if _simple(seg):
        return _obx_fields_simple(seg, tz)
    return _obx_fields_general(seg, tz)


def _value(comps: list[str], value_type: str, component_separator: str) -> str:
    if value_type == "SN":
        # comparator ^ num1 ^ separator/suffix ^ num2: "^182" -> "182", "<^5" -> "<5"
        return "".join(comps[:4])
    if value_type in _CODED_TYPES:
        return _at(comps, 0) or _at(comps, 1)
    filled = [c for c in comps if c]
    if len(filled) == 1:
        return filled[0]  # "NOT DETECTED^" and GeneXpert's "^31.1" under ST
    while comps and not comps[-1]:
        comps.pop()
    return component_separator.join(comps)


def _method(text: str) -> Method | None:
    lowered = text.lower()
    if "visual" in lowered or "visuell" in lowered:
        return Method.VISUAL
    if "manual" in lowered or "manuell" in lowered:
        return Method.MANUAL
    return None


def _finish(
    p: _Pending,
    instrument_id: str,
    qc: QcClassifier,
    decided: dict[tuple[_Group | None, _Group | None, str], bool],
) -> Observation:
    f = p.fields
    order, spec = p.order, p.specimen
    specimen_id = (
        (order.specimen_id if order else "")
        or (spec.specimen_id if spec else "")
        or (order.order_ids[0] if order else "")
        or (order.order_ids[1] if order else "")
    )
    key = (order, spec, p.patient_id)
    is_qc = decided.get(key)
    if is_qc is None:
        groups = [g for g in (order, spec) if g is not None]
        evidence = QcEvidence(
            patient_id=p.patient_id,
            specimen_id=specimen_id,
            specimen_roles=tuple(role for g in groups for role in g.roles),
            descriptions=tuple(
                text for g in groups for text in (g.service_text, g.specimen_text) if text
            ),
        )
        is_qc = decided[key] = qc(evidence)
    performed_at = f["performed_at"] or (order.obr_time if order else None)
    return Observation(
        instrument_id=instrument_id,
        test_code=f["test_code"],
        value=f["value"],
        value_type=f["value_type"],
        unit=f["unit"],
        reference_range=f["reference_range"],
        abnormal_flags=f["abnormal_flags"],
        method=f["method"],
        performed_at=performed_at,
        operator_id=f["operator_id"],
        specimen_id=specimen_id,
        patient_id=p.patient_id,
        result_status=f["result_status"],
        comment="\n".join(p.comments),
        instrument_serial=f["instrument_serial"],
        test_name=f["test_name"],
        is_qc=is_qc,
        extra=f["extra"],
    )
