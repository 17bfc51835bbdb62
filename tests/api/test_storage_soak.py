"""Soak (slow, a few minutes): continuous load on a real fleet keeps Redis memory flat.

Distinct photo-like uploads keep arriving at a steady rate (PIXELFLEET_SOAK_RATE, 4/s,
below what two workers sustain on a loaded 2-core machine), every result is fetched; results live PIXELFLEET_OUTPUT_TTL (30 s here) and finished jobs RESULT_TTL
(60 s here), so the fleet reaches its plateau within about a minute, after which
used_memory must stop growing. Prints the samples and the per-task figures that
docs/benchmarks.md records. `make test-slow`; PIXELFLEET_SOAK_S sets the length (180 s),
PIXELFLEET_SOAK_SIZE the upload size (800x530; the issue's case is 2040x1356).
"""
from __future__ import annotations

import base64
import os
import statistics
import time

import pytest
import redis
from rest_framework.test import APIClient

from tests.api.conftest import API_ENV
from tests.fleet_helpers import WorkerSet, job_status, wait_for_worker
from tests.storage_helpers import oom_errors, photo_jpeg, redis_image_bytes
from workers import settings
from workers.embedded_redis import RedisServer

MB = 2**20
OUTPUT_TTL, RESULT_TTL = 30, 60


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_memory_stays_flat_under_continuous_load(tmp_path, monkeypatch):
    duration = float(os.environ.get("PIXELFLEET_SOAK_S", "180"))
    width, height = (int(v) for v in os.environ.get("PIXELFLEET_SOAK_SIZE", "800x530").split("x"))
    rate_in = float(os.environ.get("PIXELFLEET_SOAK_RATE", "4"))       # uploads per second
    server = RedisServer(data_dir=tmp_path / "redis", maxmemory_mb=512).start()
    for name in API_ENV:
        monkeypatch.delenv(name, raising=False)
    for name in ("PIXELFLEET_STORAGE_URL", "PIXELFLEET_STORAGE_MAX_MB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REDIS_URL", server.url)
    monkeypatch.setattr(settings, "RESULT_TTL", RESULT_TTL)      # what the API puts on each job
    conn = redis.Redis.from_url(server.url)
    api = APIClient()
    steps = [{"filter": "resize", "params": {"width": 512}}]
    env = {"PIXELFLEET_OUTPUT_TTL": str(OUTPUT_TTL), "PIXELFLEET_RESULT_TTL": str(RESULT_TTL)}
    samples: list[tuple[float, int, int, int]] = []     # (t, used_memory, image bytes, tasks done)
    in_flight: list[str] = []
    done = uploaded = seed = 0
    assert rate_in > 0
    try:
        with WorkerSet(server.url, tmp_path) as fleet:
            for name in ("soak-1", "soak-2"):
                fleet.start(name, "io", "--no-warmup", **env)
            for name in ("soak-1", "soak-2"):
                wait_for_worker(conn, name, "idle", timeout=120)
            base = conn.info("memory")["used_memory"]
            start = next_sample = time.monotonic()
            while time.monotonic() - start < duration:
                while seed < rate_in * (time.monotonic() - start) + 1:      # a steady arrival rate
                    data = photo_jpeg(seed, width, height)
                    seed += 1
                    response = api.post("/api/tasks/", {"image_base64": base64.b64encode(data).decode(),
                                                        "steps": steps, "format": "jpeg"}, format="json")
                    assert response.status_code == 202, response.content
                    uploaded += len(data)
                    in_flight.append(response.json()["task_id"])
                for task_id in list(in_flight):
                    state = job_status(conn, task_id)
                    if state in ("finished", "failed"):
                        assert state == "finished", fleet.logs()[-3000:]
                        assert api.get(f"/api/tasks/{task_id}/result/").status_code == 200
                        in_flight.remove(task_id)
                        done += 1
                if time.monotonic() >= next_sample:
                    images = redis_image_bytes(conn)
                    samples.append((time.monotonic() - start, conn.info("memory")["used_memory"] - base,
                                    images["inputs"] + images["outputs"], done))
                    next_sample += 10
                time.sleep(0.01)
            assert oom_errors(conn) == 0
    finally:
        conn.close()
        server.stop()
    rate = done / duration
    print(f"\nsoak: {duration:.0f} s at {rate_in:g} uploads/s, {done} tasks done ({rate:.1f}/s), uploads {uploaded / max(seed, 1) / 1024:.0f} KB "
          f"each ({width}x{height}), output TTL {OUTPUT_TTL} s, job TTL {RESULT_TTL} s")
    print("   t(s)  used_memory(MB above start)  image data(MB)  tasks done")
    for t, used, images, count in samples:
        print(f"  {t:5.0f}  {used / MB:27.1f}  {images / MB:14.1f}  {count:10d}")
    # The plateau: after two job TTLs everything kept has reached its steady state.
    settled = [s for s in samples if s[0] >= 2 * RESULT_TTL]
    assert len(settled) >= 3, "soak too short to see a plateau (PIXELFLEET_SOAK_S)"
    half = len(settled) // 2
    early, late = settled[:half], settled[half:]
    plateau = statistics.mean(s[1] for s in late)
    images = statistics.mean(s[2] for s in late)
    per_result = images / max(rate * OUTPUT_TTL, 1)
    per_job = (plateau - images) / max(rate * RESULT_TTL, 1)
    print(f"plateau {plateau / MB:.1f} MB above the start = {rate:.1f} tasks/s × ({OUTPUT_TTL} s × "
          f"{per_result / 1024:.1f} KB of result + {RESULT_TTL} s × {per_job / 1024:.1f} KB of job record and "
          f"metrics); without freeing, inputs alone would have grown {uploaded / MB:.0f} MB")
    assert max(s[1] for s in late) < max(s[1] for s in early) + 4 * MB, "memory still climbing"
    assert max(s[2] for s in late) < 40 * MB
