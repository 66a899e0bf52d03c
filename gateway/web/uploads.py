"""Uploaded competence files between their preview and their apply, kept on the server.

The preview page shows what a file would change; the apply (signed) must import exactly that
file, so the browser is not asked to send it again: the server keeps the bytes under a random
token (``secrets.token_urlsafe``) that only the session which uploaded it can use, and the
apply form carries the token and the file's SHA-256 (shown on the preview), both checked.

Kept in memory, not in the store: an upload is a few kilobytes of staff data that matters for
minutes; a restart loses it and the person uploads again, and nothing of it outlives the
apply. Bounded: one pending file per session (a new upload replaces it), ``MAX_PENDING``
files in all (the oldest go first), each gone after ``TTL``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from fastapi import Request

from gateway.web.forms import form_files

#: the largest competence file read (500 people with a few tasks each is ~100 kB)
MAX_FILE_BYTES: Final = 1024 * 1024
MAX_PENDING: Final = 64
TTL: Final = timedelta(minutes=30)


class UploadTooLarge(ValueError):
    """The file is over ``MAX_FILE_BYTES``."""


@dataclass(frozen=True, slots=True)
class PendingImport:
    """A file shown in a preview, waiting for its signed apply."""

    token: str
    session_id: int
    person: str
    filename: str
    data: bytes
    sha256: str
    #: ``people_signing.plan_digest`` of the plan the preview showed
    plan_digest: str
    created_at: datetime


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class PendingImports:
    """The pending files of every session (one per session)."""

    def __init__(self, *, ttl: timedelta = TTL, max_pending: int = MAX_PENDING) -> None:
        self.ttl = ttl
        self.max_pending = max_pending
        self._items: OrderedDict[str, PendingImport] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def _expire(self, now: datetime) -> None:
        for token, item in list(self._items.items()):
            if now - item.created_at >= self.ttl or now < item.created_at:
                del self._items[token]

    def put(
        self,
        *,
        session_id: int,
        person: str,
        filename: str,
        data: bytes,
        plan_digest: str,
        now: datetime,
    ) -> PendingImport:
        """Keep ``data`` for this session (replacing its earlier pending file)."""
        self._expire(now)
        for token, item in list(self._items.items()):
            if item.session_id == session_id:
                del self._items[token]
        while len(self._items) >= self.max_pending:
            self._items.popitem(last=False)
        item = PendingImport(
            token=secrets.token_urlsafe(24),
            session_id=session_id,
            person=person,
            filename=filename,
            data=data,
            sha256=sha256_of(data),
            plan_digest=plan_digest,
            created_at=now,
        )
        self._items[item.token] = item
        return item

    def get(
        self, token: str, *, session_id: int, sha256: str, now: datetime
    ) -> PendingImport | None:
        """The pending file of ``token`` if it is this session's and its digest is ``sha256``."""
        self._expire(now)
        item = self._items.get(token)
        if item is None or item.session_id != session_id:
            return None
        if not secrets.compare_digest(item.sha256, sha256):
            return None
        return item

    def replan(self, token: str, plan_digest: str) -> None:
        """The store moved on: the preview shown again has this plan."""
        item = self._items.get(token)
        if item is not None:
            self._items[token] = replace(item, plan_digest=plan_digest)

    def pop(self, token: str) -> None:
        self._items.pop(token, None)


async def read_upload(request: Request, field: str) -> tuple[str, bytes] | None:
    """The file posted as ``field`` of a multipart form (name, bytes); None without one.
    ``UploadTooLarge`` over ``MAX_FILE_BYTES``."""
    found = (await form_files(request)).get(field)
    if found is None:
        return None
    filename, data = found
    if len(data) > MAX_FILE_BYTES:
        raise UploadTooLarge(filename)
    if not data and not filename:
        return None  # the form was sent without choosing a file
    return (filename or "upload.csv")[:128], data
