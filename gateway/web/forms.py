"""HTML form bodies: read once per request, size-capped, shared by the CSRF check and handlers.

The pages' forms post ``application/x-www-form-urlencoded`` (the browser's default), parsed
here with the standard library, so no multipart parser is needed for them. A
``multipart/form-data`` body (a file upload) goes through Starlette's parser, which needs the
``python-multipart`` package; its body must declare a length within ``MAX_MULTIPART_BYTES``
(a file upload is refused before it is read, never spooled unbounded), and the CSRF check
reads its ``csrf`` field like any other. Its files are read into memory (within that cap)
and the parser's temporary files closed at once. A handler reads its fields with ``await
form_fields(request)`` and its files with ``await form_files(request)``; the guard has
usually read them already (the CSRF field) and the result is kept on the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qsl

from fastapi import HTTPException, Request

#: the largest urlencoded form read (a page's forms are a few fields)
MAX_FORM_BYTES: Final = 64 * 1024
MAX_FIELDS: Final = 100
#: the largest multipart body read (a competence file of up to 1 MiB and its form)
MAX_MULTIPART_BYTES: Final = 2 * 1024 * 1024
MAX_FILES: Final = 4
_STATE_KEY: Final = "form_fields"
_FILES_KEY: Final = "form_files"


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _capped_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise HTTPException(status_code=413, detail="form too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise HTTPException(status_code=413, detail="form too large")
        chunks.append(chunk)
    return b"".join(chunks)


async def form_fields(request: Request) -> Mapping[str, str]:
    """The posted form's text fields (the first value of a repeated name); {} for no form."""
    cached: Mapping[str, str] | None = getattr(request.state, _STATE_KEY, None)
    if cached is not None:
        return cached
    kind = content_type(request)
    fields: dict[str, str] = {}
    if kind == "application/x-www-form-urlencoded":
        body = (await _capped_body(request)).decode("utf-8", "replace")
        try:
            pairs = parse_qsl(body, keep_blank_values=True, max_num_fields=MAX_FIELDS)
        except ValueError:
            raise HTTPException(status_code=400, detail="too many form fields") from None
        for name, value in pairs:
            fields.setdefault(name, value)
    elif kind == "multipart/form-data":
        declared = request.headers.get("content-length", "")
        if not declared.isdigit():
            raise HTTPException(status_code=411, detail="a file upload must declare its length")
        if int(declared) > MAX_MULTIPART_BYTES:
            raise HTTPException(status_code=413, detail="upload too large")
        files: dict[str, tuple[str, bytes]] = {}
        async with request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS) as form:
            for name, item in form.multi_items():
                if isinstance(item, str):
                    fields.setdefault(name, item)
                elif name not in files:
                    files[name] = (item.filename or "", await item.read())
        setattr(request.state, _FILES_KEY, files)
    setattr(request.state, _STATE_KEY, fields)
    return fields


async def form_files(request: Request) -> Mapping[str, tuple[str, bytes]]:
    """The posted multipart form's files by field name: (file name, content); {} for none."""
    await form_fields(request)
    files: Mapping[str, tuple[str, bytes]] = getattr(request.state, _FILES_KEY, {})
    return files
