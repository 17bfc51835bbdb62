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
    from api import fleet_cache
    from workers import storage_budget

    fleet_cache.forget()            # per-process caches must not carry one test's fleet into the next
    storage_budget.forget_recent()
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
    from rq import SimpleWorker
    from workers import jobs, routing
    from workers.settings import SERIALIZER
    queues = [jobs.queue(conn, name) for name in routing.queues_for(capabilities)]
    before = sum(q.finished_job_registry.count + q.failed_job_registry.count for q in queues)
    SimpleWorker(queues, connection=conn, serializer=SERIALIZER).work(burst=True)
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


# ===== A-ops fixtures (batch modes, /api/process, metrics, Prometheus) ===================
# Maintained by A-ops; a real worker *process* is needed where a heartbeat must exist
# (run_burst writes none), e.g. /api/process and compare-all check for a live worker.
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

OPS_ROOT = Path(__file__).resolve().parents[2]


def submit_io_task(conn) -> str:
    """One real task on the io queue (brightness on a small PNG), enqueued as the API does."""
    from workers.routing import enqueue_task
    from workers.storage import store_input

    return enqueue_task(conn, store_input(conn, png_bytes()), [{"filter": "brightness", "params": {}}],
                        {"source": "test"})


def wait_until(predicate, timeout: float, what: str):
    """Poll `predicate` every 0.1 s until it returns something truthy; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def start_worker(redis_server, tmp_path):
    """Start `python -m workers` (0.5 s heartbeats, no warm-up) on demand; SIGTERM after.

    `start(name, capabilities, wait=True)` returns once its heartbeat says idle.
    """
    processes = []

    def start(name: str = "ops-worker", capabilities: str = "io", wait: bool = True) -> subprocess.Popen:
        from workers.registry import read_worker

        env = {**os.environ, "REDIS_URL": redis_server.url, "SKIP_CUDA_CHECK": "1",
               "PIXELFLEET_HEARTBEAT_INTERVAL": "0.5"}
        log = open(tmp_path / f"{name}.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "workers", "--name", name, "--capabilities",
                                 capabilities, "--no-warmup"], cwd=OPS_ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        processes.append((proc, log))
        if wait:
            import redis as redis_lib
            conn = redis_lib.Redis.from_url(redis_server.url)
            wait_until(lambda: (read_worker(conn, name) or {}).get("state") == "idle", 60,
                       f"worker {name} to report idle (log: {tmp_path / (name + '.log')})")
        return proc

    yield start
    for proc, log in processes:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
# ===== end of A-ops fixtures =================================================================
