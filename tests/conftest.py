"""Shared fixtures: a real redis-server on a free loopback port, never a fake.

NUMBA_ENABLE_CUDASIM is set before anything imports numba.cuda, so the GPU kernels run
in numba's CUDA simulator here; the dispatcher never picks the simulator on its own
(`backend="auto"` means CPU unless a real device exists).
"""
from __future__ import annotations

import os

os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from pathlib import Path

import pytest
import redis

from workers.embedded_redis import RedisServer

ROOT = Path(__file__).resolve().parent.parent
SHARED_IMAGES = ROOT.parent / "shared" / "images"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One redis-server for the whole session; REDIS_URL points at it."""
    server = RedisServer(data_dir=tmp_path_factory.mktemp("redis")).start()
    previous = os.environ.get("REDIS_URL")
    os.environ["REDIS_URL"] = server.url
    yield server
    server.stop()
    if previous is None:
        os.environ.pop("REDIS_URL", None)
    else:
        os.environ["REDIS_URL"] = previous


@pytest.fixture
def redis_conn(redis_server) -> redis.Redis:
    """A client on the session server, with the database emptied before each test."""
    conn = redis.Redis.from_url(redis_server.url)
    conn.flushdb()
    return conn


@pytest.fixture
def shared_images() -> Path:
    """The shared corpus folder; tests that need it skip clearly when it is absent."""
    if not SHARED_IMAGES.is_dir():
        pytest.skip(f"image corpus not found at {SHARED_IMAGES}")
    return SHARED_IMAGES
