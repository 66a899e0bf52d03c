"""E1394 message assembly, sans-IO: the link's messages (E1381 frames joined) -> H..L messages."""

from __future__ import annotations


class E1394Assembler:
    """Joins link-level messages into E1394 messages (H..L), sans-IO.

    A link message may be a whole message, one record (many analysers send one record per ETX
    frame), or several messages back to back. H starts a message, L ends it, ``flush`` closes
    one cut short (the session ended). Record bytes are kept exactly as received, terminators
    included; a record whose frame ended without CR gets one. Lenient: LF also ends a record.
    """

    def __init__(self, *, lenient: bool) -> None:
        self._separators = b"\r\n" if lenient else b"\r"
        self._records: list[bytes] = []

    @property
    def pending(self) -> bool:
        """True while records of an unfinished message are held."""
        return bool(self._records)

    def feed(self, text: bytes) -> list[bytes]:
        """Add one link message; return the E1394 messages it completed, in order."""
        done: list[bytes] = []
        for record in self._split(text):
            kind = record[:1]
            if kind == b"H" and self._records:
                done.append(self._take())  # a new header closes a message that lacked its L
            self._records.append(record)
            if kind == b"L":
                done.append(self._take())
        return done

    def flush(self) -> bytes:
        """Return (and forget) the records of an unfinished message, or b""."""
        return self._take() if self._records else b""

    def _take(self) -> bytes:
        raw = b"".join(self._records)
        self._records.clear()
        return raw

    def _split(self, text: bytes) -> list[bytes]:
        seps = self._separators
        records: list[bytes] = []
        start = i = 0
        while i < len(text):
            if text[i] not in seps:
                i += 1
                continue
            end = i
            while end < len(text) and text[end] in seps:
                end += 1
            if i > start:
                records.append(text[start:end])
            elif records:
                records[-1] += text[start:end]
            elif self._records:
                self._records[-1] += text[start:end]  # a terminator that arrived on its own
            start = i = end
        if start < len(text):
            records.append(text[start:] + b"\r")
        return records
