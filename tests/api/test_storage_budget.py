"""Bounded storage end to end: real redis-server with a small maxmemory, real worker
processes, the API in-process. On both stores: images in Redis, and files in a directory.

- 200 different uploads, done and fetched, leave less than 20 MB of image data;
- with a 30 MB budget a burst gets 503 + Retry-After (storage full) instead of a Redis
  OOM, every accepted task completes, and submits resume by themselves once results are
  deleted or expire.
"""
from __future__ import annotations

import base64
import time

import pytest
import redis as redis_lib
from rest_framework.test import APIClient

from tests.api.conftest import API_ENV, error_of
from tests.fleet_helpers import WorkerSet, job_status, wait_for_worker, wait_until
from tests.storage_helpers import file_image_bytes, oom_errors, photo_jpeg, redis_image_bytes
from workers import storage_budget
from workers.embedded_redis import RedisServer

MB = 2**20


@pytest.fixture(params=["redis", "file"])
def make_stack(request, tmp_path, monkeypatch):
    """make_stack(budget_mb) → (api client, redis client, worker env, file root or None,
    server) on a fresh redis-server whose maxmemory is the budget."""
    servers, clients = [], []

    def make(budget_mb: int):
        server = RedisServer(data_dir=tmp_path / "redis", maxmemory_mb=budget_mb).start()
        servers.append(server)
        for name in API_ENV:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("REDIS_URL", server.url)
        root = None
        if request.param == "file":
            root = tmp_path / "images"
            env = {"PIXELFLEET_STORAGE_URL": f"file://{root}", "PIXELFLEET_STORAGE_MAX_MB": str(budget_mb)}
        else:
            monkeypatch.delenv("PIXELFLEET_STORAGE_MAX_MB", raising=False)   # the budget: Redis's maxmemory
            env = {"PIXELFLEET_STORAGE_URL": "redis://"}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        conn = redis_lib.Redis.from_url(server.url)
        clients.append(conn)
        return APIClient(), conn, env, root, server

    yield make
    for conn in clients:
        conn.close()
    for server in servers:
        server.stop()


def submit(api, data: bytes, steps: list, fmt: str = "png"):
    return api.post("/api/tasks/", {"image_base64": base64.b64encode(data).decode(), "steps": steps,
                                    "format": fmt}, format="json")


def image_bytes(conn, root) -> dict[str, int]:
    return file_image_bytes(root) if root is not None else redis_image_bytes(conn)


def wait_all(conn, ids, timeout=120) -> dict[str, str]:
    wait_until(lambda: all(job_status(conn, i) in ("finished", "failed") for i in ids), timeout,
               what=f"{len(ids)} tasks to end")
    return {i: job_status(conn, i) for i in ids}


def test_200_different_uploads_done_and_fetched_leave_little_image_data(make_stack, tmp_path):
    api, conn, env, root, server = make_stack(512)
    thumb = [{"filter": "resize", "params": {"width": 512}}]
    before = conn.info("memory")["used_memory"]
    with WorkerSet(server.url, tmp_path) as fleet:
        for name in ("st-1", "st-2"):
            fleet.start(name, "io", "--no-warmup", **env)
        ids, uploaded = [], 0
        for seed in range(200):
            data = photo_jpeg(seed)
            uploaded += len(data)
            response = submit(api, data, thumb, fmt="jpeg")
            assert response.status_code == 202, response.content
            ids.append(response.json()["task_id"])
        for name in ("st-1", "st-2"):
            wait_for_worker(conn, name, state=None, timeout=90)
        statuses = wait_all(conn, ids, timeout=180)
        assert set(statuses.values()) == {"finished"}, fleet.logs()
        fetched = [api.get(f"/api/tasks/{i}/result/") for i in ids]
        assert all(r.status_code == 200 and r["Content-Type"] == "image/jpeg" for r in fetched)
    stored = image_bytes(conn, root)
    after = conn.info("memory")["used_memory"]
    print(f"\n[{'file' if root else 'redis'}] 200 uploads of {uploaded / 200 / 1024:.0f} KB: inputs left "
          f"{stored['inputs']} B, outputs {stored['outputs'] / MB:.1f} MB, Redis used_memory "
          f"+{(after - before) / MB:.1f} MB ({(after - before) / 200 / 1024:.1f} KB per task)")
    assert uploaded > 20 * MB                        # kept, they alone would break the bound
    assert stored["inputs"] == 0                     # every input freed by its task's end
    assert stored["inputs"] + stored["outputs"] < 20 * MB
    assert after - before < 20 * MB


def test_small_budget_refuses_a_burst_with_503_and_resumes_by_itself(make_stack, tmp_path):
    api, conn, env, root, server = make_stack(30)
    full_size = [{"filter": "brightness", "params": {"factor": 1.1}}]     # PNG results as large as the input
    seeds = iter(range(10_000))

    def attempt():
        return submit(api, photo_jpeg(next(seeds)), full_size)

    # A burst with no worker running: accepted until the high-water mark, then 503s.
    accepted, refused = [], None
    for _ in range(60):
        response = attempt()
        if response.status_code == 503:
            refused = response
            break
        assert response.status_code == 202, response.content
        accepted.append(response.json()["task_id"])
    assert refused is not None and len(accepted) >= 3, f"{len(accepted)} accepted, never refused"
    body = error_of(refused)
    assert body["code"] == "storage_full" and "storage is full" in body["message"]
    assert "still complete" in body["message"] and int(refused["Retry-After"]) > 0
    assert conn.info("memory")["used_memory"] < 30 * MB and oom_errors(conn) == 0
    assert attempt().status_code == 503                                # still full: nothing was stored
    with WorkerSet(server.url, tmp_path) as fleet:
        fleet.start("bw-1", "io", "--no-warmup", **env, PIXELFLEET_OUTPUT_TTL="12")
        # Every accepted task completes, and its result can be fetched.
        assert set(wait_all(conn, accepted).values()) == {"finished"}, fleet.logs()
        assert all(api.get(f"/api/tasks/{i}/result/").status_code == 200 for i in accepted)
        # Keep submitting while the worker runs, honouring Retry-After, until the results
        # alone (nothing queued) fill the budget.
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "the results never filled the budget"
            response = attempt()
            if response.status_code == 202:
                accepted.append(response.json()["task_id"])
                continue
            assert response.status_code == 503 and error_of(response)["code"] == "storage_full"
            if storage_budget.measure(conn).pending_tasks == 0:
                break
            time.sleep(0.2)
        assert set(wait_all(conn, accepted).values()) == {"finished"}
        # Fetching and deleting results frees the space: submits resume at once.
        done = [i for i in accepted if api.get(f"/api/tasks/{i}/result/").status_code == 200]
        deleted = 0
        for task_id in reversed(done):            # newest first: the oldest may expire meanwhile (12 s)
            code = api.delete(f"/api/tasks/{task_id}/result/").status_code
            assert code in (204, 404)
            deleted += code == 204
            if deleted == 4:
                break
        assert deleted >= 1
        response = attempt()
        assert response.status_code == 202, response.content
        accepted.append(response.json()["task_id"])
        # Full again; then the results expire (PIXELFLEET_OUTPUT_TTL=12) and submits resume by themselves.
        wait_until(lambda: attempt().status_code == 503, 30, interval=0.2, what="the budget to fill again")
        resumed = wait_until(lambda: (r := attempt()).status_code == 202 and r, 60, interval=1.0,
                             what="submits to resume after the results expire")
        accepted.append(resumed.json()["task_id"])
        assert set(wait_all(conn, accepted).values()) == {"finished"}
        assert oom_errors(conn) == 0 and "OOM" not in fleet.logs()
