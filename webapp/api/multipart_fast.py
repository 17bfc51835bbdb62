"""multipart/form-data parsed in one pass over a body already in memory, or declined.

Why: Django's MultiPartParser walks an upload in 64 KB chunks through Python-level
iterators and copies it into an upload handler's buffer; for a 6 MB photo that was about
a third of the API's CPU per submit. A form as scripts send it (curl -F, requests,
browsers: `name` and `filename` quoted, a Content-Type, nothing else) is split here
with bytes.find, at C speed, and each file is one slice of the body.

Same answers as Django's parser: the same QueryDict of fields and MultiValueDict of
InMemoryUploadedFile (tests/api/test_multipart_fast.py compares them on many forms).
Anything outside that plain shape — a transfer encoding, RFC 2231 names, a preamble,
a character reference or a path in a file name, more fields or files than Django's
limits allow, a malformed body — is declined (None): the caller hands the request to
Django, whose parser then accepts or refuses it exactly as before.
"""
from __future__ import annotations

import io
import re

from django.conf import settings as django_settings
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict

Form = tuple[QueryDict, MultiValueDict]

_BOUNDARY = re.compile(rb"^multipart/form-data;\s*boundary=(?:\"([0-9A-Za-z'()+_,./:=?-]{1,70})\"|"
                       rb"([0-9A-Za-z'()+_,./:=?-]{1,70}))\s*$", re.IGNORECASE)
# A name or file name as Django reads it unchanged: printable ASCII with no quote,
# backslash, slash, '&' (html.unescape), ';' or '%', no space at either end.
_PLAIN = rb"[!#$'()*+,\-.0-9:<=>?@A-Z\[\]^_`a-z{|}~](?:[ !#$'()*+,\-.0-9:<=>?@A-Z\[\]^_`a-z{|}~]*" \
         rb"[!#$'()*+,\-.0-9:<=>?@A-Z\[\]^_`a-z{|}~])?"
_DISPOSITION = re.compile(rb'^content-disposition:[ \t]*form-data;[ \t]*name="(' + _PLAIN + rb')"'
                          rb'(?:;[ \t]*filename="(' + _PLAIN + rb')")?[ \t]*$', re.IGNORECASE)
_CONTENT_TYPE = re.compile(rb"^content-type:[ \t]*([A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+)[ \t]*$",
                           re.IGNORECASE)
_HEADER_END = b"\r\n\r\n"
_MAX_HEADER_BYTES = 1024      # Django looks for a part's headers in its first 1 KB first


def boundary_of(content_type: bytes) -> bytes | None:
    """The boundary of a plain `multipart/form-data; boundary=…` header, else None."""
    found = _BOUNDARY.match(content_type.strip())
    return (found.group(1) or found.group(2)) if found else None


def parse(body: bytes, content_type: bytes) -> Form | None:
    """(fields, files) as Django's MultiPartParser gives them, or None: let Django parse it."""
    boundary = boundary_of(content_type)
    if boundary is None:
        return None
    opening = b"--" + boundary + b"\r\n"
    if not body.startswith(opening):
        return None
    dashes = b"--" + boundary      # Django splits at this even without a line break before it
    fields: QueryDict = QueryDict(mutable=True)
    files = MultiValueDict()
    field_count = file_count = field_bytes = 0
    position = len(opening)
    while True:
        found = body.find(dashes, position)
        if found < 2 or body[found - 2:found] != b"\r\n":
            return None
        end = found - 2
        part = _part(body, position, end)
        if part is None:
            return None
        name, filename, content_type_value, start = part
        if filename is None:
            field_count += 1
            value = body[start:end]
            field_bytes += len(value) + len(name) + 2
            fields.appendlist(name, value.decode("utf-8", errors="replace"))
        else:
            file_count += 1
            size = end - start
            files.appendlist(name, InMemoryUploadedFile(io.BytesIO(body[start:end]), name, filename,
                                                        content_type_value, size, None, {}))
        after = found + len(dashes)
        if body.startswith(b"--", after):
            break
        if not body.startswith(b"\r\n", after):
            return None
        position = after + 2
    max_fields = django_settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    max_files = django_settings.DATA_UPLOAD_MAX_NUMBER_FILES
    max_bytes = django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if (max_fields is not None and field_count + file_count > max_fields) or \
            (max_files is not None and file_count > max_files) or \
            (max_bytes is not None and field_bytes > max_bytes):
        return None          # Django refuses these, with its own message
    fields._mutable = False
    return fields, files


def _part(body: bytes, position: int, end: int) -> tuple[str, str | None, str, int] | None:
    """(name, file name or None, content type, where the data starts) of one part whose
    headers are the plain kind, else None."""
    header_end = body.find(_HEADER_END, position, min(end, position + _MAX_HEADER_BYTES))
    if header_end < 0:
        return None
    disposition = content_type = None
    for line in body[position:header_end].split(b"\r\n"):
        if (found := _DISPOSITION.match(line)) is not None and disposition is None:
            disposition = found
        elif (typed := _CONTENT_TYPE.match(line)) is not None and content_type is None:
            content_type = typed.group(1)
        else:
            return None
    if disposition is None:
        return None
    name, filename = disposition.group(1).decode("ascii"), disposition.group(2)
    if filename is not None and filename in (b".", b".."):
        return None
    return (name, filename.decode("ascii") if filename is not None else None,
            content_type.decode("ascii").lower() if content_type is not None else "", header_end + len(_HEADER_END))
