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
from workers import jobs, routing, settings, stats
from workers.jobs import fetch_job
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
            conn.set(LINGER_KEY, 30)   # outlives three kills, restarts and grace waits (~7 s each) with room
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
            job = fetch_job(conn, task_id)
            assert job.meta.get("losses", 0) == 0 and job.return_value()["worker"] == runner
            assert conn.hlen(settings.LOSSES_KEY) == 0
            totals = stats.counters(conn)
            assert totals["completed"] == 1 and totals["failed"] == 0
            print(f"workers back in the registry {', '.join(f'{s:.1f}' for s in back_in)} s after each restart")
    finally:
        server.stop()


def test_worker_killed_right_after_popping_loses_nothing(redis_server, redis_conn, tmp_path):
    """The pop-to-start window: a worker with several queues pops a task (its own claim
    script, run here while the process is frozen, so the moment is exact) and dies
    before starting it. The reaper of another worker puts it back; it runs once."""
    import signal

    from tests.fleet_helpers import enqueue_sleep
    from workers import claims
    from workers.routing import queues_for

    with WorkerSet(redis_server.url, tmp_path) as fleet:
        fleet.start("pop-a", "io,cpu", "--no-warmup")
        wait_for_worker(redis_conn, "pop-a", "idle", timeout=90)
        assert "pop-a" in claims.claimants(redis_conn)
        fleet.workers["pop-a"].signal(signal.SIGSTOP)
        task_id = enqueue_sleep(redis_conn, 0.2)
        keys = [jobs.queue(redis_conn, name).key for name in queues_for({"io", "cpu"})]
        assert claims.claim(redis_conn, "pop-a", keys, None) == ("rq:queue:pixelfleet:io", task_id)
        fleet.workers["pop-a"].signal(signal.SIGKILL)
        killed = time.monotonic()
        assert redis_conn.lrange(claims.claim_key("pop-a"), 0, -1) == [task_id.encode()]
        fleet.start("pop-b", "io", "--no-warmup")
        assert wait_for_status(redis_conn, task_id, timeout=60) == "finished", fleet.logs()
        print(f"popped-then-killed task finished {time.monotonic() - killed:.1f} s after the kill")
        wait_until(lambda: f"task={task_id} event=done" in fleet.workers["pop-b"].log_text(), 10, what="done line")
        assert f"task={task_id} event=task_requeued" in fleet.workers["pop-b"].log_text()
        assert redis_conn.llen(claims.claim_key("pop-a")) == 0
        assert "pop-a" not in claims.claimants(redis_conn)
        assert fetch_job(redis_conn, task_id).meta.get("losses", 0) == 0


def test_worker_restarted_under_its_name_gives_back_its_claims(redis_server, redis_conn, tmp_path):
    """The same window when the fleet restarts the worker at once (same name): the new
    process gives back what its predecessor claimed before it takes anything."""
    from tests.fleet_helpers import enqueue_sleep
    from workers import claims

    first, second = enqueue_sleep(redis_conn, 0.1), enqueue_sleep(redis_conn, 0.1)
    key = jobs.queue(redis_conn, "pixelfleet:io").key
    assert claims.claim(redis_conn, "pop-c", [key], None) == (key, first)    # a dead predecessor's pop
    with WorkerSet(redis_server.url, tmp_path) as fleet:
        fleet.start("pop-c", "io", "--no-warmup")
        for task_id in (first, second):
            assert wait_for_status(redis_conn, task_id, timeout=90) == "finished", fleet.logs()
        assert "event=claims_rescued" in fleet.workers["pop-c"].log_text()
        # Back at the FRONT: the rescued task ran before the one queued behind it.
        ended = [fetch_job(redis_conn, t).ended_at for t in (first, second)]
        assert ended[0] < ended[1]


def test_task_whose_redis_goes_away_is_handed_back_not_failed(tmp_path):
    """Redis disappears under a running task (its own Redis call fails): not the task's
    failure. Once Redis is back the task goes to the front of its queue, no loss counted,
    and runs again to the end."""
    from workers.jobs import fetch_job, queue

    server = RedisServer(data_dir=tmp_path / "redis", appendonly=True, appendfsync="always").start()
    conn = redis.Redis.from_url(server.url, socket_connect_timeout=1)
    try:
        with WorkerSet(server.url, tmp_path) as fleet:
            fleet.start("gone-a", "io", "--no-warmup")
            wait_for_worker(conn, "gone-a", "idle", timeout=90)
            job = queue(conn, "pixelfleet:io").enqueue_call(
                "tests.fleet_helpers.touch_redis_after", args=(1.5,), meta={"capabilities": ["io"]})
            wait_until(lambda: conn.hget(job.key, "status") == b"started", 20, interval=0.02,
                       what="the task running")
            server.kill()
            time.sleep(4)
            server.start()
            assert wait_for_status(conn, job.id, timeout=60) == "finished", fleet.logs()
            wait_until(lambda: f"task={job.id} event=done" in fleet.logs(), 10, what="the done line")
            logs = fleet.logs()
            assert f"task={job.id} event=task_handed_back" in logs and "Redis went away mid-task" in logs, logs
            assert logs.count(f"task={job.id} event=done") == 1
            assert conn.hlen(settings.LOSSES_KEY) == 0
            assert stats.counters(conn)["failed"] == 0
            assert "failure_type" not in fetch_job(conn, job.id).meta
    finally:
        server.stop()
