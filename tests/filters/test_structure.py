"""Structural checks: refuse truncated files cheaply, and never refuse what decodes."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from filters import io as image_io
from filters import photos
from filters.errors import EngineError, InvalidImage
from filters.structure import MissingEnd, check_structure


def _encode(fmt: str, **options) -> bytes:
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **options)
    return out.getvalue()


FILES = {
    "jpeg": lambda: _encode("JPEG", quality=90),
    "progressive jpeg": lambda: _encode("JPEG", quality=90, progressive=True),
    "png": lambda: _encode("PNG"),
    "webp": lambda: _encode("WEBP", quality=80),
    "bmp": lambda: _encode("BMP"),
}


def test_every_valid_corpus_file_passes(shared_images: Path):
    for path in sorted((shared_images / "valid").iterdir()):
        data = path.read_bytes()
        check_structure(data, image_io.probe_image(data).format)


def test_the_corrupt_corpus_png_needs_a_decode(shared_images: Path):
    """Its damage is inside and after the image data: only decoding sees it (the API
    decodes images this small at submit, so it is still refused there)."""
    data = (shared_images / "invalid" / "broken_data_stream.png").read_bytes()
    check_structure(data, "png")
    with pytest.raises(InvalidImage, match="could not decode the png image"):
        image_io.decode_image(data)


@pytest.mark.parametrize("name", list(FILES))
def test_truncations_are_refused_and_agree_with_the_decoder(name):
    """Every cut the check refuses, the full decode refuses too (no false refusals; a JPEG
    only missing its end marker is settled by a 1/8-scale decode that agrees with the
    full one), and a cut in the middle of the data is always refused."""
    data = FILES[name]()
    fmt = image_io.probe_image(data).format
    check_structure(data, fmt)
    for cut in sorted({len(data) // 2, len(data) * 3 // 4, len(data) - 1, len(data) - 2}):
        part = data[:cut]
        try:
            check_structure(part, fmt)
        except MissingEnd:
            # Settled by a 1/8-scale decode, which agrees with the full decode.
            try:
                image_io.decode_image(part)
            except EngineError:
                with pytest.raises(EngineError):
                    image_io.verify_decodes(part)
            else:
                image_io.verify_decodes(part)
        except InvalidImage as exc:
            assert "truncated or damaged" in exc.message
            with pytest.raises(EngineError):
                image_io.decode_image(part)
        else:
            assert cut >= len(data) - 2, f"{name} cut at {cut} of {len(data)} passed"
    with pytest.raises(InvalidImage):
        check_structure(data[: len(data) // 2], fmt)


def test_a_photo_is_checked_in_microseconds():
    import time

    data = photos.named_photo("2k")
    start = time.perf_counter()
    for _ in range(100):
        check_structure(data, "jpeg")
    assert (time.perf_counter() - start) / 100 < 0.005


def test_damage_inside_the_compressed_data_passes_the_check():
    """Only a decode can see it: the worker's job (tests/api/test_submit_checks.py)."""
    data = bytearray(_encode("PNG"))
    start = data.index(b"IDAT") + 200
    data[start:start + 64] = bytes(64)
    check_structure(bytes(data), "png")
    with pytest.raises(InvalidImage, match="could not decode the png image"):
        image_io.decode_image(bytes(data))
