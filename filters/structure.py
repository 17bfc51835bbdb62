"""Cheap structural checks: what a file's layout says about it without decoding pixels.

Why: the API must refuse a broken upload with a 4xx, but decoding a 24 MP photo at submit
costs as much as the task itself (and the worker decodes it again, smaller). Walking a
file's segments or chunks costs microseconds and catches the common damage, a truncated
upload, exactly where the decoder would fail too. Each check refuses only what
Pillow's full decode also refuses (measured: a PNG without IEND decodes, so it passes); a
JPEG without its end-of-image marker is MissingEnd, which the caller settles by decoding
at 1/8 scale (libjpeg may still decode one that lost only the marker). Damage inside the
compressed data passes and is found by the worker's decode (a job_failure saying why).

Checked: JPEG (markers up to the first scan, then an end-of-image marker after it), PNG
(chunk lengths within the file up to the end of the image data, IHDR first, image
data present), WebP (RIFF size within
the file), BMP (uncompressed pixel rows within the file). GIF and TIFF: header only.
"""
from __future__ import annotations

import struct

from filters.errors import InvalidImage

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG markers without a length field: TEM, RST0-7, SOI, EOI.
_STANDALONE = {0x01, *range(0xD0, 0xD8), 0xD8, 0xD9}


class MissingEnd(InvalidImage):
    """A JPEG whose data ends without its end-of-image marker: usually a truncated upload,
    but libjpeg may still decode one that lost only the marker. `check_image` settles it
    with a 1/8-scale decode (a fraction of a full one), so neither case is misjudged."""


def check_structure(data: bytes, fmt: str) -> None:
    """InvalidImage when the layout of `data` (format `fmt`, our name) is broken."""
    check = _CHECKS.get(fmt)
    if check is not None:
        check(data)


def _truncated(fmt: str, what: str) -> InvalidImage:
    return InvalidImage(f"the {fmt} image is truncated or damaged: {what}", {"check": "structure"})


def _check_jpeg(data: bytes) -> None:
    """Segments from SOI to the first SOS must fit the file, and an EOI must follow it."""
    if data[:2] != b"\xff\xd8":
        raise _truncated("jpeg", "it does not start with a start-of-image marker")
    pos, size = 2, len(data)
    while True:
        if pos + 2 > size or data[pos] != 0xFF:
            raise _truncated("jpeg", f"no image scan found (the headers end at byte {pos} of {size})")
        while pos + 2 < size and data[pos + 1] == 0xFF:     # fill bytes before a marker
            pos += 1
        marker = data[pos + 1]
        if marker in _STANDALONE:
            pos += 2
            continue
        if pos + 4 > size:
            raise _truncated("jpeg", f"segment 0xFF{marker:02X} at byte {pos} runs past the end of the file")
        length = struct.unpack_from(">H", data, pos + 2)[0]
        if length < 2 or pos + 2 + length > size:
            raise _truncated("jpeg", f"segment 0xFF{marker:02X} at byte {pos} runs past the end of the file")
        pos += 2 + length
        if marker == 0xDA:                                  # start of scan: entropy data follows
            break
    if data.rfind(b"\xff\xd9", pos) < 0:
        raise MissingEnd(f"the jpeg image is truncated or damaged: the data ends (byte {size}) "
                         "before its end-of-image marker", {"check": "structure"})


def _check_png(data: bytes) -> None:
    """Chunks must fit the file, IHDR first, at least one IDAT before the data ends."""
    if data[:8] != _PNG_SIGNATURE:
        raise _truncated("png", "the PNG signature is missing")
    pos, size, first, has_data = 8, len(data), True, False
    while pos + 8 <= size:
        length, kind = struct.unpack_from(">I4s", data, pos)
        if first and kind != b"IHDR":
            raise _truncated("png", f"the first chunk is {kind!r}, not IHDR")
        first = False
        if has_data and kind != b"IDAT":
            return          # the image data is complete; Pillow ignores damage after it
        if pos + 12 + length > size:
            raise _truncated("png", f"chunk {kind.decode('latin-1')!r} at byte {pos} declares {length} bytes "
                                    f"but the file ends at byte {size}")
        has_data = has_data or kind == b"IDAT"
        pos += 12 + length
        if kind == b"IEND":
            break
    if not has_data:
        raise _truncated("png", "it holds no image data (no IDAT chunk)")


def _check_webp(data: bytes) -> None:
    """The RIFF container's declared size must be in the file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise _truncated("webp", "the RIFF/WEBP header is missing")
    declared = struct.unpack_from("<I", data, 4)[0] + 8
    if declared > len(data):
        raise _truncated("webp", f"the RIFF header declares {declared} bytes but the file has {len(data)}")


def _check_bmp(data: bytes) -> None:
    """Uncompressed rows (BI_RGB, BI_BITFIELDS) must all be in the file."""
    if len(data) < 30 or data[:2] != b"BM":
        raise _truncated("bmp", "the BMP header is missing")
    offset = struct.unpack_from("<I", data, 10)[0]
    header = struct.unpack_from("<I", data, 14)[0]
    if header < 40 or len(data) < 34:
        return                                              # OS/2 core header: Pillow decides
    width, height, _, bits, compression = struct.unpack_from("<iiHHI", data, 18)
    if compression not in (0, 3) or bits == 0:
        return                                              # RLE and embedded JPEG/PNG: no fixed size
    stride = (abs(width) * bits + 31) // 32 * 4
    needed = offset + stride * abs(height)
    if needed > len(data):
        raise _truncated("bmp", f"{abs(height)} rows need {needed} bytes but the file has {len(data)}")


_CHECKS = {"jpeg": _check_jpeg, "png": _check_png, "webp": _check_webp, "bmp": _check_bmp}
