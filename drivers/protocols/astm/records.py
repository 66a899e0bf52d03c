"""ASTM E1394 (LIS2-A2) record codec, sans-IO: delimiters, escapes, parse and encode messages."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.errors import LocalProtocolError, RemoteProtocolError

Repeat = tuple[str, ...]
"""One repeat of a field: its components, unescaped."""
Field = tuple[Repeat, ...]
"""One field: its repeats."""

#: LIS2-A2 6: header, patient, order, result, comment, manufacturer, request (query),
#: scientific and terminator records.
RECORD_TYPES = frozenset("HPORCMQSL")


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The four delimiters a header record declares (LIS2-A2 7.1.2): ``H|\\^&`` by default."""

    field: str = "|"
    repeat: str = "\\"
    component: str = "^"
    escape: str = "&"

    def __post_init__(self) -> None:
        chars = (self.field, self.repeat, self.component, self.escape)
        if any(len(c) != 1 for c in chars):
            raise LocalProtocolError("each delimiter must be one character", field="delimiters")
        if len(set(chars)) != 4:
            raise LocalProtocolError(f"delimiters {chars!r} are not distinct", field="delimiters")
        if any(c.isalnum() or c in "\r\n" or ord(c) > 0x7F for c in chars):
            raise LocalProtocolError(
                f"delimiters {chars!r} must be ASCII, not alphanumeric, not CR/LF",
                field="delimiters",
            )

    @property
    def definition(self) -> str:
        """The H.2 text that declares the repeat, component and escape delimiters, e.g. ``\\^&``."""
        return self.repeat + self.component + self.escape


DEFAULT_DELIMITERS = Delimiters()


@dataclass(frozen=True, slots=True)
class Record:
    """One record: its type letter and its fields after the type (``fields[0]`` is field 2).

    For an H record ``fields[0]`` is ``((delimiters.definition,),)``, as read from the wire.
    """

    type: str
    fields: tuple[Field, ...]

    def field(self, number: int) -> Field:
        """Return field ``number`` in the standard's numbering (2 = first after the type)."""
        index = number - 2
        if index < 0:
            raise IndexError(f"field numbers start at 2, not {number}")
        return self.fields[index] if index < len(self.fields) else ()

    def value(self, number: int, repeat: int = 0, component: int = 0) -> str:
        """Return one component of a field (standard numbering), or "" when it is absent."""
        field = self.field(number)
        if repeat >= len(field) or component >= len(field[repeat]):
            return ""
        return field[repeat][component]


def text_field(value: str) -> Field:
    """Wrap a plain string as a field with one repeat of one component."""
    return ((value,),)


_NAMED = {"F": "field", "S": "component", "R": "repeat", "E": "escape"}
_HEX = re.compile(r"X((?:[0-9A-Fa-f]{2})+)")


def unescape(text: str, delimiters: Delimiters, *, lenient: bool = False) -> str:
    """Replace ``&F& &S& &R& &E& &Xhh..&`` (with the declared escape) by the characters they name.

    Strict: an unknown or unterminated escape raises ``RemoteProtocolError``; lenient keeps it.
    """
    esc = delimiters.escape
    if esc not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != esc:
            out.append(ch)
            i += 1
            continue
        end = text.find(esc, i + 1)
        seq = text[i + 1 : end] if end >= 0 else ""
        replacement: str | None = None
        if seq in _NAMED:
            replacement = getattr(delimiters, _NAMED[seq])
        elif (match := _HEX.fullmatch(seq)) is not None:
            replacement = bytes.fromhex(match.group(1)).decode("latin-1")
        if replacement is None:
            if not lenient:
                raise RemoteProtocolError(
                    f"bad escape sequence at {text[i : i + 12]!r}",
                    field="escape",
                    data=text.encode("latin-1", "replace"),
                )
            out.append(ch)
            i += 1
            continue
        out.append(replacement)
        i = end + 1
    return "".join(out)


def escape(text: str, delimiters: Delimiters) -> str:
    """Escape delimiters as ``&F& &S& &R& &E&`` and control characters as ``&Xhh&``."""
    names = {getattr(delimiters, attr): code for code, attr in _NAMED.items()}
    out: list[str] = []
    for ch in text:
        if ch in names:
            out.append(f"{delimiters.escape}{names[ch]}{delimiters.escape}")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"{delimiters.escape}X{ord(ch):02X}{delimiters.escape}")
        else:
            out.append(ch)
    return "".join(out)


def _parse_fields(text: str, d: Delimiters, lenient: bool) -> tuple[Field, ...]:
    return tuple(
        tuple(
            tuple(unescape(c, d, lenient=lenient) for c in rep.split(d.component))
            for rep in field.split(d.repeat)
        )
        for field in text.split(d.field)
    )


def _bad(message: str, line: str, field: str = "record") -> RemoteProtocolError:
    return RemoteProtocolError(message, field=field, data=line.encode("latin-1", "replace"))


def _parse_header(line: str) -> tuple[Delimiters, Record]:
    if len(line) < 5 or (len(line) > 5 and line[5] != line[1]):
        raise _bad("header must start H, field, repeat, component, escape, field", line, "header")
    try:
        delimiters = Delimiters(line[1], line[2], line[3], line[4])
    except LocalProtocolError as exc:
        raise _bad(str(exc), line, "delimiters") from exc
    return delimiters, Record("H", (text_field(line[2:5]),))


def parse_message(
    text: bytes | str,
    *,
    lenient: bool = False,
    encoding: str = "latin-1",
    delimiters: Delimiters = DEFAULT_DELIMITERS,
) -> list[Record]:
    """Parse records separated by CR; each H record sets the delimiters for what follows.

    Strict: CR separators only, no empty records, the first record is H. Lenient: CR, LF or
    CR LF separators, empty lines skipped, ``delimiters`` used until the first H, unknown
    escapes kept as they are. Values are never reinterpreted (a decimal comma stays a comma).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode(encoding)
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(f"not {encoding}: {exc}", field="encoding") from exc
    if lenient:
        lines = text.replace("\r\n", "\r").replace("\n", "\r").split("\r")
    else:
        if "\n" in text:
            raise _bad("LF in a message (records end with CR)", text, "separator")
        lines = text.split("\r")
    if lines and lines[-1] == "":
        lines.pop()
    d = delimiters
    records: list[Record] = []
    for line in lines:
        if not line:
            if lenient:
                continue
            raise _bad("empty record", text, "record")
        kind = line[0]
        if kind not in RECORD_TYPES:
            raise _bad(f"unknown record type {kind!r}", line, "record type")
        if kind == "H":
            d, header = _parse_header(line)
            rest = line[6:] if len(line) > 5 else None
            fields = header.fields + (_parse_fields(rest, d, lenient) if rest is not None else ())
            records.append(Record("H", fields))
            continue
        if not records and not lenient:
            raise _bad("a message must start with an H record", line, "record type")
        if len(line) == 1:
            records.append(Record(kind, ()))
        elif line[1] != d.field:
            raise _bad(f"record type {kind!r} not followed by {d.field!r}", line, "record")
        else:
            records.append(Record(kind, _parse_fields(line[2:], d, lenient)))
    return records


def _encode_fields(record: Record, fields: Iterable[Field], d: Delimiters) -> str:
    parts: list[str] = []
    for field in fields:
        if not field or any(not rep for rep in field):
            raise LocalProtocolError(
                f"{record.type} record has an empty field or repeat tuple; use (('',),)",
                field="record",
            )
        parts.append(d.repeat.join(d.component.join(escape(c, d) for c in rep) for rep in field))
    return d.field.join(parts)


def encode_record(record: Record, delimiters: Delimiters = DEFAULT_DELIMITERS) -> str:
    """Return one record as text (without its CR); strict: known type, well-formed header."""
    d = delimiters
    if record.type not in RECORD_TYPES:
        raise LocalProtocolError(f"unknown record type {record.type!r}", field="record type")
    if record.type == "H":
        if not record.fields or record.fields[0] != ((d.definition,),):
            raise LocalProtocolError(
                f"H record field 2 must be (({d.definition!r},),)", field="header"
            )
        head = "H" + d.field + d.definition
        rest = record.fields[1:]
        return head + (d.field + _encode_fields(record, rest, d) if rest else "")
    if not record.fields:
        return record.type
    return record.type + d.field + _encode_fields(record, record.fields, d)


def encode_message(
    records: Iterable[Record],
    delimiters: Delimiters = DEFAULT_DELIMITERS,
    *,
    encoding: str = "latin-1",
) -> bytes:
    """Return the records as bytes, each ended by CR; the first must be H, only one H."""
    records = list(records)
    if not records or records[0].type != "H":
        raise LocalProtocolError("a message must start with an H record", field="record type")
    if any(r.type == "H" for r in records[1:]):
        raise LocalProtocolError("only the first record may be H", field="record type")
    text = "".join(encode_record(r, delimiters) + "\r" for r in records)
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"not encodable as {encoding}: {exc}", field="encoding") from exc
