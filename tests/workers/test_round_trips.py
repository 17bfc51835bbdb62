"""Redis round trips a fleet worker spends per task: each is latency, and each write one is
an fsync under `appendfsync always` (make run's embedded Redis), so they are counted here.

Counted at the margin (20 tasks minus 10, over 10) with a real worker in this process,
built as workers/__main__ builds it (with a heartbeat thread, here not started, so RQ's
own per-loop heartbeats are skipped as in the fleet), so the burst's start and stop do
not blur the figure.
"""
from __future__ import annotations

import pytest
import redis

from tests.storage_helpers import use_store
from tests.workers.test_routing import CountingConnection, png
from workers import routing
from workers.heartbeat import HeartbeatThread, WorkerHealth
from workers.routing import queues_for
from workers.runtime import Runtime
from workers.worker import PixelfleetWorker

# The pop (claim script), the job's HGETALL, the start (execution, fence, status, heartbeat
# and the "started" meta in one MULTI), the commit (WATCH + GET, then one MULTI with the
# result, the wake-up, the input's release and the worker's idle state), and, for inputs
# in Redis, the input's GET (a file store reads a file instead). Writes: the pop, the
# start and the commit. RQ alone would add a second start MULTI, the meta's write and
# the idle HSET, and the file store a separate release.
ROUND_TRIPS_PER_TASK = {"redis": 7, "file": 6}


def _burst_round_trips(conn: redis.Redis, tasks: int) -> int:
    for _ in range(tasks):
        routing.enqueue_task(conn, None, [{"filter": "grayscale"}], {}, data=png())
    health = WorkerHealth(runtime=Runtime(name="counted", capabilities=frozenset({"io", "cpu"})), state="idle")
    worker = PixelfleetWorker(queues_for({"io", "cpu"}), health=health, connection=conn,
                              heartbeat=HeartbeatThread(conn, health))
    CountingConnection.sends = 0
    worker.work(burst=True, logging_level=None)
    assert health.done == tasks
    return CountingConnection.sends


@pytest.fixture(params=["redis", "file"])
def store(request, tmp_path, monkeypatch) -> str:
    return use_store(request.param, tmp_path, monkeypatch)


def test_a_task_costs_the_worker_six_or_seven_round_trips(redis_server, store):
    conn = redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=CountingConnection, host="127.0.0.1", port=redis_server.port))
    _burst_round_trips(conn, 1)   # warms RQ's caches (version, scripts)
    per_task = (_burst_round_trips(conn, 20) - _burst_round_trips(conn, 10)) / 10
    assert per_task == ROUND_TRIPS_PER_TASK[store]
