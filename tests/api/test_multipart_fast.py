"""api.multipart_fast gives exactly what Django's MultiPartParser gives, or declines.

Each form is parsed by both; where the fast parser answers, the fields, the files'
names, field names, content types, sizes and bytes must be Django's. The odd shapes
must be declined (None), so Django keeps deciding them.
"""
from __future__ import annotations

import io
import os

import django
import pytest

django.setup()

from django.http.multipartparser import MultiPartParser  # noqa: E402

from api import multipart_fast  # noqa: E402

B = "XyZ0123boundary"
CT = f"multipart/form-data; boundary={B}"
JPEG = b"\xff\xd8\xff\xe0" + os.urandom(3000) + b"\r\n--notit\r\n" + os.urandom(100) + b"\xff\xd9"


def part(name: str, value: bytes, filename: str | None = None, content_type: str | None = None,
         disposition: str = "form-data") -> bytes:
    head = f'Content-Disposition: {disposition}; name="{name}"'
    if filename is not None:
        head += f'; filename="{filename}"'
    lines = [head] + ([f"Content-Type: {content_type}"] if content_type else [])
    return f"--{B}\r\n".encode() + "\r\n".join(lines).encode() + b"\r\n\r\n" + value + b"\r\n"


def form(*parts: bytes, epilogue: bytes = b"\r\n") -> bytes:
    return b"".join(parts) + f"--{B}--".encode() + epilogue


def django_parse(body: bytes, content_type: str = CT):
    meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))}
    from django.core.files.uploadhandler import MemoryFileUploadHandler
    return MultiPartParser(meta, io.BytesIO(body), [MemoryFileUploadHandler()], "utf-8").parse()


def described(files) -> list:
    return sorted((key, f.name, f.field_name, f.content_type, f.size, f.charset, f.read())
                  for key in files for f in files.getlist(key))


PLAIN_FORMS = {
    "bench": form(part("steps", b'[{"filter":"resize","params":{"width":512}}]'), part("format", b"jpeg"),
                  part("quality", b"80"), part("image", JPEG, "photo.jpg", "image/jpeg")),
    "curl": form(part("image", JPEG, "cat.png", "image/png"), part("filters", b"blur,resize")),
    "no type": form(part("image", JPEG, "x.jpg")),
    "two files": form(part("images", JPEG, "a.jpg", "image/jpeg"), part("images", JPEG[:500], "b.jpg", "Image/JPEG")),
    "unicode value": form(part("filters", "résumé ✓".encode()), part("image", JPEG, "a b.jpg", "image/jpeg")),
    "bad utf-8": form(part("format", b"\xff\xfejpeg")),
    "empty value": form(part("quality", b""), part("image", b"", "empty.jpg", "image/jpeg")),
    "repeated": form(part("filters", b"blur"), part("filters", b"resize")),
    "no epilogue": form(part("format", b"png"), epilogue=b""),
    "junk epilogue": form(part("format", b"png"), epilogue=b"\r\ntrailing junk"),
    "field with type": form(part("steps", b"[]", content_type="application/json")),
    "case": form(part("format", b"png").replace(b"Content-Disposition: form-data; name=",
                                                  b"content-disposition: Form-Data; NAME=")),
}


@pytest.mark.parametrize("name", sorted(PLAIN_FORMS))
def test_plain_forms_parse_as_django_parses_them(name):
    body = PLAIN_FORMS[name]
    ours = multipart_fast.parse(body, CT.encode())
    assert ours is not None, "a plain form must not be declined"
    theirs = django_parse(body)
    assert dict(ours[0].lists()) == dict(theirs[0].lists())
    assert described(ours[1]) == described(theirs[1])


def test_the_file_is_the_uploaded_bytes_and_quoted_boundaries_work():
    body = form(part("image", JPEG, "photo.jpg", "image/jpeg"))
    fields, files = multipart_fast.parse(body, f'multipart/form-data; boundary="{B}"'.encode())
    assert files["image"].read() == JPEG and files["image"].size == len(JPEG)
    assert not fields


ODD_FORMS = {
    "transfer encoding": form(part("image", JPEG, "a.jpg", "image/jpeg").replace(
        b"Content-Type: image/jpeg", b"Content-Type: image/jpeg\r\nContent-Transfer-Encoding: base64")),
    "rfc 2231 name": form(part("image", JPEG, "a.jpg").replace(b'filename="a.jpg"', b"filename*=UTF-8''a%20b.jpg")),
    "path in file name": form(part("image", JPEG, "../../etc/a.jpg")),
    "backslash path": form(part("image", JPEG, "C:\\\\x\\\\a.jpg")),
    "entity in file name": form(part("image", JPEG, "a&amp;b.jpg")),
    "empty file name": form(part("image", JPEG, "")),
    "dot file name": form(part("image", JPEG, "..")),
    "preamble": b"preamble\r\n" + form(part("format", b"png")),
    "truncated": form(part("image", JPEG, "a.jpg"))[:-40],
    "no closing": b"".join([part("format", b"png")]),
    "bare LF delimiter": form(part("format", b"png")).replace(b"png\r\n--", b"png\n--"),
    "boundary inside data": form(part("image", b"abc--" + B.encode() + b"def", "a.jpg")),
    "charset param": form(part("image", JPEG, "a.jpg", "image/jpeg; charset=utf-8")),
    "unknown header": form(part("format", b"png").replace(b"\r\n\r\npng", b"\r\nX-Thing: 1\r\n\r\npng")),
    "no disposition": form(f"--{B}\r\nContent-Type: text/plain\r\n\r\nhello\r\n".encode()),
    "attachment": form(part("format", b"png", disposition="attachment")),
    "quote in name": form(part('a"b', b"png")),
    "space-padded name": form(part(" format", b"png")),
}


@pytest.mark.parametrize("name", sorted(ODD_FORMS))
def test_odd_forms_are_left_to_django(name):
    assert multipart_fast.parse(ODD_FORMS[name], CT.encode()) is None


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary=",
                                          "multipart/mixed; boundary=abc", "application/json",
                                          f"multipart/form-data; boundary={B}; charset=latin-1"])
def test_unusual_content_types_are_left_to_django(content_type):
    assert multipart_fast.parse(PLAIN_FORMS["bench"], content_type.encode()) is None


def test_more_files_than_django_allows_is_left_to_django():
    from django.test import override_settings
    body = form(*(part("images", JPEG[:100], f"{i}.jpg") for i in range(3)))
    with override_settings(DATA_UPLOAD_MAX_NUMBER_FILES=2):
        assert multipart_fast.parse(body, CT.encode()) is None
    with override_settings(DATA_UPLOAD_MAX_NUMBER_FILES=3):
        assert len(multipart_fast.parse(body, CT.encode())[1].getlist("images")) == 3
