"""Fixtures for the API tests: Django set up once, a DRF client on the real Redis,
small real images, and a real burst worker.

Everything goes through the session's real redis-server (tests/conftest.py); the
database is flushed before each test by `redis_conn`.
"""
from __future__ import annotations

import io
import os

import django
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
django.setup()

from PIL import Image  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

# Settings read per request; a test that needs one sets it with monkeypatch.
API_ENV = ("PIXELFLEET_API_TOKENS", "PIXELFLEET_READ_REQUIRES_TOKEN", "PIXELFLEET_THROTTLE_SUBMIT",
           "PIXELFLEET_VERIFY_DECODE_MAX_MEGAPIXELS")


@pytest.fixture
def api(redis_conn, monkeypatch) -> APIClient:
    """A DRF test client against the real, freshly flushed Redis, with auth and throttling off."""
    for name in API_ENV:
        monkeypatch.delenv(name, raising=False)
    return APIClient()


def png_bytes(width: int = 48, height: int = 32, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    """A small real image with some structure (a gradient), encoded in `fmt`."""
    image = Image.new(mode, (width, height))
    pixels = image.load()
    for y in range(height):
        for x in range(width):
            value = (x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256)
            pixels[x, y] = value if mode == "RGB" else value + (200,) if mode == "RGBA" else value[0]
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture
def small_png() -> bytes:
    return png_bytes()


def run_burst_worker(conn, capabilities=("io", "cpu")) -> int:
    """Run a real worker until its queues are empty; returns the number of jobs it ran.

    workers.worker.run_burst (W-runtime) when it exists, else a plain rq.SimpleWorker
    over the same queues (workers.routing decides which).
    """
    try:
        from workers.worker import run_burst
    except ImportError:
        run_burst = None
    if run_burst is not None:
        return run_burst(conn, capabilities=tuple(capabilities))
    from rq import Queue, SimpleWorker
    from workers import routing
    queues = [Queue(name, connection=conn) for name in routing.queues_for(capabilities)]
    before = sum(q.finished_job_registry.count + q.failed_job_registry.count for q in queues)
    SimpleWorker(queues, connection=conn).work(burst=True)
    return sum(q.finished_job_registry.count + q.failed_job_registry.count for q in queues) - before


@pytest.fixture
def burst_worker(redis_conn):
    """Call it to process everything queued so far with a real worker (io+cpu by default)."""
    return lambda capabilities=("io", "cpu"): run_burst_worker(redis_conn, capabilities)


def error_of(response) -> dict:
    """The {"code", "message", "details"} of an error response, checking the shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "details"} <= set(body["error"]), body
    return body["error"]
