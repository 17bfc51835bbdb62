"""The libjpeg-turbo path (simplejpeg) gives exactly Pillow's pixels, and Pillow keeps
every JPEG that path does not take.

The reference is the same decode with the fast path switched off (Pillow's own decode,
EXIF transpose and ICC conversion), so a difference in one pixel fails.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from bench.photos import photo, photo_jpeg
from filters import io as image_io
from filters.errors import EngineError
from filters.pipeline import decode_for

TURBO = image_io._turbo_decode
RESIZES = {"full": None, "dct-large": 600, "dct-small": 150}   # widths for a 1600-wide photo


class Spy:
    """Counts what _turbo_decode returned: arrays (taken) and None (left to Pillow)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, off: bool = False) -> None:
        self.taken = self.declined = 0
        original = TURBO

        def spy(*args):
            result = None if off else original(*args)
            if result is None:
                self.declined += 1
            else:
                self.taken += 1
            return result
        monkeypatch.setattr(image_io, "_turbo_decode", spy)


def _both(monkeypatch: pytest.MonkeyPatch, data: bytes, width: int | None):
    def run():
        if width is None:
            return image_io.decode_scaled(data)
        return decode_for(data, [{"filter": "resize", "params": {"width": width}}])[0]

    fast_spy = Spy(monkeypatch)
    fast = run()
    Spy(monkeypatch, off=True)
    slow = run()
    return fast, slow, fast_spy


def _same(a: image_io.Decoded, b: image_io.Decoded) -> None:
    assert a.image.shape == b.image.shape
    assert np.array_equal(a.image, b.image)
    assert (a.label, a.height, a.width) == (b.label, b.height, b.width)
    assert a.image.flags.c_contiguous and a.image.dtype == np.uint8


@pytest.mark.parametrize("scale", list(RESIZES))
@pytest.mark.parametrize("subsampling", [0, 2])   # 4:4:4 and 4:2:0
def test_photo_pixels_are_pillows_at_every_scale(monkeypatch, scale, subsampling):
    buf = io.BytesIO()
    photo(1600, 1066, seed=3).save(buf, "JPEG", quality=88, subsampling=subsampling)
    fast, slow, spy = _both(monkeypatch, buf.getvalue(), RESIZES[scale])
    _same(fast, slow)
    assert spy.taken == 1
    assert fast.label == "full" if scale == "full" else fast.label.startswith("dct:1/")


def test_progressive_jpeg_too(monkeypatch):
    buf = io.BytesIO()
    photo(640, 480, seed=1).save(buf, "JPEG", quality=85, progressive=True)
    fast, slow, spy = _both(monkeypatch, buf.getvalue(), 150)
    _same(fast, slow)
    assert spy.taken == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_stands_upright_as_pillow_does(monkeypatch, orientation):
    exif = Image.Exif()
    exif[image_io.ORIENTATION_TAG] = orientation
    buf = io.BytesIO()
    photo(320, 200, seed=orientation).save(buf, "JPEG", quality=90, exif=exif.tobytes())
    for width in (None, 60):   # 60: a DCT scale for either side (1/4 or 1/2)
        fast, slow, spy = _both(monkeypatch, buf.getvalue(), width)
        _same(fast, slow)
        assert spy.taken == 1


def test_corpus_jpegs_decode_as_pillow_does(monkeypatch, shared_images: Path):
    taken = 0
    for path in sorted((shared_images / "valid").glob("*.jpg")):
        for width in (None, 40):
            fast, slow, spy = _both(monkeypatch, path.read_bytes(), width)
            _same(fast, slow)
            taken += spy.taken
    assert taken > 0


def _grey() -> bytes:
    buf = io.BytesIO()
    photo(200, 150).convert("L").save(buf, "JPEG")
    return buf.getvalue()


def _cmyk() -> bytes:
    buf = io.BytesIO()
    photo(200, 150).convert("CMYK").save(buf, "JPEG")
    return buf.getvalue()


def _wide_gamut() -> bytes:
    """A JPEG carrying a non-sRGB profile (LAB's stands in): its colours need converting."""
    buf = io.BytesIO()
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    photo(200, 150).save(buf, "JPEG", icc_profile=profile)
    return buf.getvalue()


def _trailing() -> bytes:
    return photo_jpeg(200, 150) + b"camera maker's trailer"


@pytest.mark.parametrize("make", [_grey, _cmyk, _wide_gamut, _trailing])
def test_unusual_jpegs_are_left_to_pillow(monkeypatch, make):
    data = make()
    fast, slow, spy = _both(monkeypatch, data, None)
    _same(fast, slow)
    assert spy.taken == 0 and spy.declined == 1


def test_damage_libjpeg_only_warns_about_is_settled_by_pillow(monkeypatch):
    """Bytes overwritten inside the scan, the end marker intact: libjpeg warns, the fast
    path declines, and the outcome is Pillow's, error or pixels."""
    data = bytearray(photo_jpeg(400, 300, seed=5))
    data[len(data) // 2: len(data) // 2 + 40] = b"\xff\x00" * 20 + b"\xff\xd0" * 10
    data = bytes(data)
    outcomes = []
    for off in (False, True):
        spy = Spy(monkeypatch, off=off)
        try:
            outcomes.append(image_io.decode_scaled(data).image)
        except EngineError as exc:
            outcomes.append(type(exc))
        if not off:
            assert spy.taken == 0
    fast, slow = outcomes
    assert (fast is slow) if not isinstance(fast, np.ndarray) else np.array_equal(fast, slow)
