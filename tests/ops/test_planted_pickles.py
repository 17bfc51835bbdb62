"""An attacker with write access to Redis plants code; no fleet process may run it.

Real redis-server, a real worker process (`python -m workers`) and the real API (gunicorn,
started as tests/ops/conftest.py starts it). Planted, the way a Redis client would:
pickled job data on every queue a CPU fleet has (and the GPU queues, which no worker here
serves but the API still reads), pickled meta, a JSON job naming os.system, a pickled
result on a finished task, pickled heartbeat and completion records. Every pickle, if
loaded, writes a marker file; the marker must never appear. The planted jobs the worker
can reach must end as job_failure with a reason; the API answers every read without a
5xx; the worker is still alive and runs a real task afterwards.
"""
from __future__ import annotations

import pickle
import time
import zlib
from base64 import b64encode
from pathlib import Path

import pytest
import redis

from tests.ops.conftest import LiveFleet, fleet_env
from workers import jobs, routing, settings, storage
from workers.embedded_redis import free_port

FLEET_DB = 5
SERVED = ("pixelfleet:io", "pixelfleet:cpu", "pixelfleet:cpu+io")   # a CPU-only fleet's queues
UNSERVED = ("pixelfleet:gpu", "pixelfleet:cpu+gpu+io")


class Marker:
    """Unpickling this writes the marker file, naming the process that did it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        code = f"import os; open({self.path!r}, 'a').write('unpickled by pid %d\\n' % os.getpid())"
        return (exec, (code,))


@pytest.fixture(scope="module")
def fleet(redis_server, tmp_path_factory):
    """API + one io,cpu worker on their own database; the worker runs no test helpers."""
    redis_url = f"redis://127.0.0.1:{redis_server.port}/{FLEET_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    bind = f"127.0.0.1:{free_port()}"
    env = fleet_env(redis_url, bind)
    env.pop("PIXELFLEET_TEST_TASK_FUNCTIONS", None)
    live = LiveFleet(url=f"http://{bind}", token="t", redis_url=redis_url,
                     log_dir=tmp_path_factory.mktemp("planted-logs"), env=env)
    try:
        live.start_api()
        live.start_worker("sec-w", "io,cpu")
        live.wait_ready(1)
        yield live
    finally:
        live.stop()


def png(conn) -> str:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (5, 6, 7)).save(buffer, format="PNG")
    return storage.store_input(conn, buffer.getvalue())


def plant_job(conn, queue: str, func: str = routing.TASK_FUNCTION, args=({},), **fields) -> str:
    """Enqueue a job and overwrite `fields` of its hash in the same MULTI, so no worker
    can take it before the plant: what a client writing straight to Redis achieves."""
    caps = sorted(routing.capabilities_of_queue(queue))
    with conn.pipeline() as pipe:
        job = jobs.queue(conn, queue).enqueue_call(func, args=args, meta={"capabilities": caps},
                                                   pipeline=pipe)
        if fields:
            pipe.hset(job.key, mapping=fields)
        pipe.zadd(settings.TASK_INDEX_KEY, {job.id: time.time()})
        pipe.execute()
    return job.id


def wait_status(fleet, task_id: str, wanted: set[str], timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = fleet.get(f"/api/tasks/{task_id}/")
        assert response.status_code < 500, response.text
        body = response.json()
        if body.get("status") in wanted or time.monotonic() > deadline:
            assert body.get("status") in wanted, (body, fleet.logs())
            return body
        time.sleep(0.2)


def test_planted_code_never_runs_in_the_worker_or_the_api(fleet, tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps(Marker(marker))
    conn = redis.Redis.from_url(fleet.redis_url)
    digest = png(conn)
    legit = {"digest": digest, "steps": [{"filter": "grayscale", "params": {}}], "format": "png",
             "quality": 90, "device": "auto"}

    # A finished task whose result is then replaced by a pickle (stream entry and old field).
    finished = routing.enqueue_task(conn, digest, [{"filter": "grayscale"}], {})
    wait_status(fleet, finished, {"finished"})
    conn.xadd(f"rq:results:{finished}", {"type": 1, "return_value": b64encode(evil), "worker_name": "x"})
    conn.hset(f"rq:job:{finished}", "result", evil)

    data_planted = {q: plant_job(conn, q, data=zlib.compress(evil)) for q in SERVED + UNSERVED}
    meta_planted = plant_job(conn, "pixelfleet:io", args=(legit,), meta=evil)
    os_system = plant_job(conn, "pixelfleet:io", func="os.system", args=(f"touch {marker}",))
    callback = plant_job(conn, "pixelfleet:io", args=(legit,), failure_callback_name="os.system")
    conn.set(settings.HEARTBEAT_KEY.format(name="evil"), evil, ex=600)
    conn.zadd(settings.COMPLETIONS_KEY, {evil: time.time()})

    reached = [*(data_planted[q] for q in SERVED), meta_planted, os_system, callback]
    for task_id in reached:
        body = wait_status(fleet, task_id, {"failed"})
        assert body["failure_type"] == "job_failure" and body["failure_reason"], body
        assert "not run" in body["failure_reason"] or "unreadable" in body["failure_reason"], body
    assert "os.system" in fleet.get(f"/api/tasks/{os_system}/").json()["failure_reason"]

    for queue in UNSERVED:   # no worker reads them; the API does, without unpickling
        body = fleet.get(f"/api/tasks/{data_planted[queue]}/").json()
        assert body["status"] == "queued" and body["waiting_reason"], body

    status = fleet.get(f"/api/tasks/{finished}/")
    assert status.status_code == 200 and status.json()["status"] == "failed"
    assert "result" in status.json()["failure_reason"]
    assert fleet.get(f"/api/tasks/{finished}/result/").status_code == 409
    for path in ("/api/tasks/?limit=100", f"/api/task/{meta_planted}/status", "/api/metrics/", "/metrics",
                 "/api/stats/", "/api/workers/status/", "/api/health/"):
        response = fleet.get(path)
        assert response.status_code < 500, (path, response.status_code, response.text[:500])
    listed = {t["task_id"]: t for t in fleet.get("/api/tasks/?limit=100").json()["tasks"]}
    assert all(listed[t]["status"] == "failed" for t in reached)
    workers = fleet.get("/api/workers/status/").json()
    assert "evil" not in str(workers) and "sec-w" in str(workers)

    # The worker lived on: a real task after all that still runs.
    after = routing.enqueue_task(conn, digest, [{"filter": "grayscale"}], {})
    assert wait_status(fleet, after, {"finished"})["result"]["worker"] == "sec-w"
    assert fleet.workers["sec-w"].poll() is None
    assert not marker.exists(), marker.read_text()
