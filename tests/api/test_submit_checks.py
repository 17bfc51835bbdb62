"""What the API checks at submit, and what it leaves to the worker's (smaller) decode.

A 24 MP photo must not be fully decoded per request: probe (header) plus the structural
check (microseconds) at submit; a full decode only for images up to
PIXELFLEET_VERIFY_DECODE_MAX_MEGAPIXELS (default 1). filters.io.DECODE_COUNTS counts every
decode in this process (the DRF test client runs the API here), so the tests can see it.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from filters import io as image_io
from filters import photos
from tests.api.conftest import error_of
from tests.api.test_tasks import b64, submit_json

THUMBNAIL = {"filters": ["resize"], "filter_params": {"resize": {"width": 300}}, "format": "jpeg"}


def _decodes() -> int:
    return sum(image_io.DECODE_COUNTS.values())


def _big_png_with_damaged_data() -> bytes:
    """A 1.2 MP PNG whose compressed data is damaged but whose chunks are intact."""
    rng = np.random.default_rng(3)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (900, 1300, 3), dtype=np.uint8)).save(out, "PNG", compress_level=1)
    data = bytearray(out.getvalue())
    start = data.index(b"IDAT") + 100_000
    data[start:start + 4096] = bytes(4096)
    return bytes(data)


def test_photo_is_not_decoded_at_submit_and_the_worker_decodes_it_small(api, burst_worker):
    before = _decodes()
    response = submit_json(api, {"image_base64": b64(photos.named_photo("2k")), **THUMBNAIL})
    assert response.status_code == 202, response.content
    assert _decodes() == before                                   # probe + structure only
    assert response.json()["image"]["width"] == 2040
    assert burst_worker() == 1
    status = api.get(response.json()["status_url"]).json()
    assert status["status"] == "finished", status
    assert status["result"]["decode"]["method"] == "dct" and status["result"]["decode"]["scale"] == "1/4"   # 510 >= 1.25 * 300


def test_small_images_are_still_decoded_at_submit(api, small_png):
    before = _decodes()
    assert submit_json(api, {"image_base64": b64(small_png), **THUMBNAIL}).status_code == 202
    assert _decodes() == before + 1


def test_truncated_photo_is_refused_at_submit(api):
    data = photos.named_photo("2k")
    response = submit_json(api, {"image_base64": b64(data[: len(data) // 2]), **THUMBNAIL})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_image" and "truncated" in error["message"], error


def test_photo_missing_only_its_end_marker_is_settled_by_a_small_decode(api, monkeypatch):
    calls = []
    real = image_io.verify_decodes
    monkeypatch.setattr(image_io, "verify_decodes", lambda data: calls.append(len(data)) or real(data))
    full_before = image_io.DECODE_COUNTS["full"]
    data = photos.named_photo("2k")[:-2]
    response = submit_json(api, {"image_base64": b64(data), **THUMBNAIL})
    assert calls == [len(data)] and image_io.DECODE_COUNTS["full"] == full_before
    # libjpeg reads this one to its end or not depending on the buffer: the 1/8 decode
    # and the full decode agree either way (tests/filters/test_structure.py).
    try:
        real(data)
        expected = 202
    except image_io.InvalidImage:
        expected = 422
    assert response.status_code == expected, response.content


def test_damage_only_a_decode_sees_fails_fast_in_the_worker(api, burst_worker):
    response = submit_json(api, {"image_base64": b64(_big_png_with_damaged_data()), **THUMBNAIL})
    assert response.status_code == 202, response.content
    assert burst_worker() == 1
    status = api.get(response.json()["status_url"]).json()
    assert status["status"] == "failed" and status["failure_type"] == "job_failure", status
    assert "could not decode the png image" in status["failure_reason"], status
    assert status["processing_ms"] < 10_000
