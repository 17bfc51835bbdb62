"""Redis outages with real processes: a real redis-server (AOF, fsync always) killed
with SIGKILL mid-task and restarted on the same port and data folder.

What must hold: the running task is neither run twice nor counted as lost (the reaper
holds its judgement until every worker had a fair chance to beat again), and it ends
with exactly one `done`.
"""
from __future__ import annotations

import time

import redis
from rq.job import Job

from tests.fleet_helpers import (LINGER_KEY, WorkerSet, submit, wait_for_status, wait_for_worker, wait_until,
                                 worker_record)
from workers import routing, settings, stats
from workers.embedded_redis import RedisServer

BEAT_S = 0.5                      # heartbeat TTL 1.5 s: an outage of OUTAGE_S outlives every record
OUTAGE_S = 2.5
KILLS = 3


def test_redis_killed_three_times_mid_task(tmp_path, monkeypatch):
    monkeypatch.setattr(routing, "TASK_FUNCTION", "tests.fleet_helpers.process_then_linger")
    server = RedisServer(data_dir=tmp_path / "redis", appendonly=True, appendfsync="always").start()
    conn = redis.Redis.from_url(server.url, socket_connect_timeout=1)
    names = ("ok-a", "ok-b")
    try:
        with WorkerSet(server.url, tmp_path) as fleet:
            for name in names:
                fleet.start(name, "io", "--no-warmup", PIXELFLEET_HEARTBEAT_INTERVAL=str(BEAT_S))
            for name in names:
                wait_for_worker(conn, name, "idle", timeout=90)
            conn.set(LINGER_KEY, 18)
            task_id = submit(conn, [{"filter": "brightness", "params": {"factor": 1.2}}])
            runner = wait_until(lambda: next((n for n in names if (worker_record(conn, n) or {}).get(
                "current_task") == task_id), None), 20, interval=0.05, what="a worker to take the task")
            wait_until(lambda: conn.get(LINGER_KEY) is None, 20, interval=0.05, what="the task running")
            back_in = []
            for _ in range(KILLS):
                server.kill()
                time.sleep(OUTAGE_S)
                server.start()
                restarted = time.monotonic()
                assert conn.hget(Job.key_for(task_id), "status") == b"started"   # the AOF kept it
                wait_until(lambda: all(worker_record(conn, n) for n in names), 20, interval=0.05,
                           what="both workers back in the registry")
                back_in.append(time.monotonic() - restarted)
                # Past the reaper's grace (one TTL + one beat): a pass would have judged by now.
                time.sleep(3 * BEAT_S + BEAT_S + 1.0)
                record = worker_record(conn, runner)
                assert record and record["current_task"] == task_id, fleet.logs()
                assert conn.hlen(settings.LOSSES_KEY) == 0, fleet.logs()
            assert wait_for_status(conn, task_id, timeout=60) == "finished", fleet.logs()
            wait_until(lambda: f"task={task_id} event=done" in fleet.logs(), 10, what="the done line")
            time.sleep(0.5)
            logs = fleet.logs()
            assert logs.count(f"task={task_id} event=done") == 1, logs
            assert "event=task_requeued" not in logs and "event=fenced" not in logs, logs
            assert "event=reaper_holding" in logs
            job = Job.fetch(task_id, connection=conn)
            assert job.meta.get("losses", 0) == 0 and job.return_value()["worker"] == runner
            assert conn.hlen(settings.LOSSES_KEY) == 0
            totals = stats.counters(conn)
            assert totals["completed"] == 1 and totals["failed"] == 0
            print(f"workers back in the registry {', '.join(f'{s:.1f}' for s in back_in)} s after each restart")
    finally:
        server.stop()
