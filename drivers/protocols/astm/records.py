"""ASTM E1394 (LIS2-A2) record codec, sans-IO: delimiters, escapes, parse and encode messages."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import repeat
from typing import Any

from drivers.errors import LocalProtocolError, RemoteProtocolError
from drivers.patient_data import ASTM_PATIENT_RECORD as PATIENT_RECORD

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


StoredField = str | Field
"""A field as a record keeps it: its text when it is one value (no repeat, no component), as
astm-2025 and astmio keep it; else its repeats. ``Record.field`` always gives the nested form."""


def _nested(field: StoredField) -> Field:
    return ((field,),) if type(field) is str else field  # type: ignore[return-value]


class Record:
    """One record: its type letter and its fields after the type (``fields[0]`` is field 2).

    For an H record ``fields[0]`` is ``((delimiters.definition,),)``, as read from the wire.
    A field that is one plain value is stored as its text: most fields are, and two tuples
    per such field were most of the parser's work and its garbage collector's. The nested
    view is built on access; equality and hashing use it, so how a field is stored never shows.
    """

    __slots__ = ("stored", "type")

    type: str
    stored: tuple[StoredField, ...]

    def __init__(self, type: str, fields: tuple[StoredField, ...]) -> None:
        _set_record_type(self, type)
        _set_record_stored(self, tuple(fields))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Record is immutable: cannot set {name!r}")

    @property
    def fields(self) -> tuple[Field, ...]:
        """Every field in nested form: repeats of components."""
        return tuple(map(_nested, self.stored))

    def field(self, number: int) -> Field:
        """Return field ``number`` in the standard's numbering (2 = first after the type)."""
        index = number - 2
        if index < 0:
            raise IndexError(f"field numbers start at 2, not {number}")
        return _nested(self.stored[index]) if index < len(self.stored) else ()

    def value(self, number: int, repeat: int = 0, component: int = 0) -> str:
        """Return one component of a field (standard numbering), or "" when it is absent."""
        index = number - 2
        if index < 0:
            raise IndexError(f"field numbers start at 2, not {number}")
        if index >= len(self.stored):
            return ""
        field = self.stored[index]
        if type(field) is str:
            return field if repeat == 0 and component == 0 else ""
        if repeat >= len(field) or component >= len(field[repeat]):
            return ""
        return field[repeat][component]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self.type == other.type and self.fields == other.fields

    def __hash__(self) -> int:
        return hash((self.type, self.fields))

    def __repr__(self) -> str:
        return f"Record({self.type!r}, {self.fields!r})"


# The parser builds one Record per line: it sets the two slots directly rather than through
# ``__init__`` (a Python call per record), as ``__init__`` itself does.
_new_record: Any = object.__new__
_set_record_type: Any = Record.__dict__["type"].__set__
_set_record_stored: Any = Record.__dict__["stored"].__set__


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
                    f"bad escape sequence at character {i}",
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


def _nest_field(field: str, d: Delimiters, lenient: bool) -> Field:
    """One field that holds a repeat or escape character: its repeats, components, unescaped."""
    repeats = field.split(d.repeat)
    if d.escape not in field:
        return tuple(map(tuple, map(str.split, repeats, repeat(d.component))))
    return tuple(
        tuple(
            unescape(c, d, lenient=lenient) if d.escape in c else c for c in rep.split(d.component)
        )
        for rep in repeats
    )


def _field_of(text: str, d: Delimiters, lenient: bool) -> StoredField:
    """One field as stored: its text when it holds no delimiter or escape, else nested."""
    if d.repeat in text or d.escape in text:
        return _nest_field(text, d, lenient)
    if d.component in text:
        return (tuple(text.split(d.component)),)
    return text


def _parse_fields(text: str, d: Delimiters, lenient: bool) -> tuple[StoredField, ...]:
    """Split record text (what follows ``X|``) into stored fields, unescaped."""
    return tuple([_field_of(part, d, lenient) for part in text.split(d.field)])


def _with_components(line: str, parts: list[str], fd: str, cd: str) -> tuple[StoredField, ...]:
    """Fields of a record whose only special character is the component delimiter: the few
    fields holding one (a universal test ID, say) are found with ``str.find`` and split; the
    rest stay as their text, with no Python-level step each."""
    fields: list[StoredField] = list(parts)
    at = line.find(cd)
    counted, index = 2, 0  # parts start after "X|"
    while at >= 0:
        index += line.count(fd, counted, at)
        counted = at
        fields[index] = (tuple(parts[index].split(cd)),)
        end = line.find(fd, at)
        at = -1 if end < 0 else line.find(cd, end)
    return tuple(fields)


def _bad(message: str, line: str, field: str = "record") -> RemoteProtocolError:
    """A refused record; its bytes are quoted unless it is (or may be) the patient record: a
    P record, or a line whose record type does not read (a damaged P is one)."""
    kind = line[:1]
    quote = kind != PATIENT_RECORD and kind in RECORD_TYPES
    data = line.encode("latin-1", "replace")
    return RemoteProtocolError(message, field=field, data=data, quote=quote)


def _in_record(exc: RemoteProtocolError, line: str) -> RemoteProtocolError:
    """A field's error again, quoting its whole record rather than the field alone: a record
    that swallowed the P record after it (a lost CR) then shows where the patient begins, and
    the quote stops there; a P record is named, not quoted."""
    field = PATIENT_RECORD if line[:1] == PATIENT_RECORD else exc.field or "record"
    return _bad(str(exc.args[0]), line, field)


@functools.lru_cache(maxsize=64)
def _delimiters(field: str, rep: str, component: str, esc: str) -> Delimiters:
    """The checked Delimiters for these four characters; every header declares one set, and
    an analyser always the same, so the checks run once rather than once per message."""
    return Delimiters(field, rep, component, esc)


def _read_header(line: str, lenient: bool) -> tuple[Delimiters, str | None, str | None]:
    """Return the delimiters an H record declares, the doubled repeat to undo, and its rest.

    Lenient: ``H|\\\\^&|`` (Horiba Yumizen H550 as published by go-astm) is a message whose every
    backslash was doubled by the program that wrote it out; the header then declares
    ``\\^&`` and each doubled repeat character in the message stands for one.
    """
    doubled: str | None = None
    definition = line[2:5]
    rest_at = 6
    if (
        lenient
        and len(line) >= 6
        and line[2] == line[3]
        and (len(line) == 6 or line[6] == line[1])
        and line[5] != line[1]
    ):
        doubled, definition, rest_at = line[2] * 2, line[3:6], 7
    elif len(line) < 5 or (len(line) > 5 and line[5] != line[1]):
        raise _bad("header must start H, field, repeat, component, escape, field", line, "header")
    try:
        delimiters = _delimiters(line[1], definition[0], definition[1], definition[2])
    except LocalProtocolError as exc:
        raise _bad(str(exc), line, "delimiters") from exc
    rest = line[rest_at:] if len(line) >= rest_at else None
    if doubled is not None and rest is not None:
        rest = rest.replace(doubled, doubled[0])
    return delimiters, doubled, rest


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
    escapes kept as they are, a header written ``H|\\\\^&`` (doubled backslashes) undone.
    Values are never reinterpreted (a decimal comma or a space-padded value stays as sent).
    A line starting with ``#`` is refused like any other unknown record type: no analyser
    sends one; comment lines in published sample files are for the sample loader to drop.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode(encoding)
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(
                f"not {encoding}: {exc.reason} at byte {exc.start}",
                field="encoding",
                data=exc.object[max(0, exc.start - 8) : exc.end + 8],
                quote=False,  # the undecodable byte may sit inside a name
            ) from exc
    if "\n" in text:
        if not lenient:
            at = text.index("\n")
            raise RemoteProtocolError(
                f"LF in a message at character {at} (records end with CR)",
                field="separator",
                data=text.encode("latin-1", "replace"),
                quote=False,  # the whole message: the P record with it
            )
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    lines = text.split("\r")
    if lines and not lines[-1]:
        lines.pop()
    if not lenient and lines and lines[0][:1] in RECORD_TYPES and lines[0][:1] != "H":
        raise _bad("a message must start with an H record", lines[0], "record type")
    d = delimiters
    fd, rd, cd, esc = d.field, d.repeat, d.component, d.escape
    doubled: str | None = None
    records: list[Record] = []
    append = records.append
    for line in lines:
        kind = line[:1]
        if kind == "H":
            d, doubled, rest = _read_header(line, lenient)
            fd, rd, cd, esc = d.field, d.repeat, d.component, d.escape
            head: tuple[StoredField, ...] = (((d.definition,),),)
            try:
                fields = head if rest is None else head + _parse_fields(rest, d, lenient)
            except RemoteProtocolError as exc:
                raise _in_record(exc, line) from None
        elif kind not in RECORD_TYPES:
            if lenient and not line:
                continue
            if not line:
                raise RemoteProtocolError(
                    "empty record",
                    field="record",
                    data=text.encode("latin-1", "replace"),
                    quote=False,
                )
            raise _bad(f"unknown record type {kind!r}", line, "record type")
        else:
            if doubled is not None:
                line = line.replace(doubled, doubled[0])
            parts = line.split(fd)
            if parts[0] != kind:
                raise _bad(f"record type {kind!r} not followed by {fd!r}", line, "record")
            del parts[0]
            # The common cases build the nesting with no Python-level step per field.
            if rd in line or esc in line:
                try:
                    fields = tuple([_field_of(part, d, lenient) for part in parts])
                except RemoteProtocolError as exc:
                    raise _in_record(exc, line) from None
            elif cd in line:
                fields = _with_components(line, parts, fd, cd)
            else:
                fields = tuple(parts)
        record: Record = _new_record(Record)
        _set_record_type(record, kind)
        _set_record_stored(record, fields)
        append(record)
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
