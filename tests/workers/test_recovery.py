"""Recovery with real processes: SIGKILL mid-task, poison tasks, Redis going away."""
from __future__ import annotations

import signal
import time

from rq import Worker

from tests.fleet_helpers import (WorkerSet, enqueue_poison, enqueue_sleep, job_status, submit, submit_slow,
                                 wait_for_status, wait_for_worker, wait_until, worker_record)
from workers import jobs, settings, storage
from workers.jobs import fetch_job
from workers.embedded_redis import RedisServer


def _runner_of(conn, task_id, names):
    for name in names:
        record = worker_record(conn, name)
        if record and record["current_task"] == task_id:
            return name
    return None


def test_sigkilled_worker_task_completes_on_another_worker(redis_server, redis_conn, tmp_path):
    with WorkerSet(redis_server.url, tmp_path) as fleet:
        for name in ("rk-a", "rk-b"):
            fleet.start(name, "io,cpu")
        for name in ("rk-a", "rk-b"):
            wait_for_worker(redis_conn, name, "idle", timeout=90)
        task_id = submit_slow(redis_conn, 4.0)
        victim = wait_until(lambda: _runner_of(redis_conn, task_id, ("rk-a", "rk-b")), 20,
                            interval=0.05, what="a worker to take the task")
        survivor = "rk-b" if victim == "rk-a" else "rk-a"
        time.sleep(0.3)   # mid-task: it has started filtering
        assert job_status(redis_conn, task_id) == "started"
        fleet.stop(victim, signal.SIGKILL, timeout=10)
        killed = time.monotonic()
        assert wait_for_status(redis_conn, task_id, timeout=60) == "finished", fleet.logs()
        recovered_in = time.monotonic() - killed
        job = fetch_job(redis_conn, task_id)
        assert job.return_value()["worker"] == survivor
        assert job.meta["losses"] == 1
        assert int(redis_conn.hget(settings.LOSSES_KEY, task_id)) == 1
        assert recovered_in < 30, f"recovered in {recovered_in:.1f}s"
        assert f"task={task_id} event=task_requeued" in fleet.workers[survivor].log_text()
        # The requeue kept the task's input (it ran again); its end freed it.
        digest = job.args[0]["digest"]
        assert not redis_conn.exists(storage.input_key(digest)) and not storage.input_holders(redis_conn, digest)


def test_worker_restarted_under_same_name_gets_its_lost_task_back(redis_server, redis_conn, tmp_path):
    """What the fleet does after a crash: same name, new process. The old record is cleared
    at once (its pid is dead), and the new worker, alive but not running the old task,
    must not shield it from the reaper."""
    with WorkerSet(redis_server.url, tmp_path) as fleet:
        fleet.start("same-1", "io", "--no-warmup")
        wait_for_worker(redis_conn, "same-1", "idle", timeout=90)
        task_id = enqueue_sleep(redis_conn, 30)
        first = wait_until(lambda: (r := worker_record(redis_conn, "same-1")) and r["current_task"] == task_id and r,
                           20, interval=0.05, what="busy")
        fleet.stop("same-1", signal.SIGKILL, timeout=10)
        killed = time.monotonic()
        again = fleet.start("same-1", "io", "--no-warmup")
        wait_until(lambda: (r := worker_record(redis_conn, "same-1")) and r["pid"] == again.pid
                   and r["current_task"] == task_id, 30, interval=0.05, what="the task back on the new process")
        assert time.monotonic() - killed < 30
        assert worker_record(redis_conn, "same-1")["pid"] != first["pid"]
        job = fetch_job(redis_conn, task_id)
        assert job.meta["losses"] == 1 and job.get_status() == "started"
        assert "is alive but no longer running the task" in again.log_text()


def test_poison_task_fails_as_worker_failure_after_max_losses(redis_server, redis_conn, tmp_path):
    with WorkerSet(redis_server.url, tmp_path) as fleet:
        # Three io workers the poison will kill, one cpu worker it never reaches (it reaps).
        names = [f"poison-{i}" for i in range(settings.MAX_WORKER_LOSSES)]
        fast = {"PIXELFLEET_HEARTBEAT_INTERVAL": "0.5"}   # three deaths to notice: keep it short
        for name in names:
            fleet.start(name, "io", "--no-warmup", **fast)
        fleet.start("bystander", "cpu", "--no-warmup", **fast)
        for name in [*names, "bystander"]:
            wait_for_worker(redis_conn, name, "idle", timeout=90)
        task_id = enqueue_poison(redis_conn, "pixelfleet:io")
        assert wait_for_status(redis_conn, task_id, ("failed",), timeout=60) == "failed", fleet.logs()
        job = fetch_job(redis_conn, task_id)
        assert job.meta["failure_type"] == "worker_failure"
        assert job.meta["losses"] == settings.MAX_WORKER_LOSSES
        assert "lost 3 times" in job.meta["failure_reason"]
        assert all(fleet.workers[n].proc.poll() is not None for n in names)   # each one died on it
        assert worker_record(redis_conn, "bystander")["state"] == "idle"      # the fleet lives on
        assert redis_conn.llen("rq:queue:pixelfleet:io") == 0                 # not requeued again


def test_worker_survives_redis_restart(redis_conn, tmp_path):
    import redis

    # No persistence: the restarted server has forgotten everything, the worker's
    # heartbeat record and RQ registration included; both must come back on their own.
    server = RedisServer(data_dir=tmp_path / "redis", appendonly=False).start()
    conn = redis.Redis.from_url(server.url)
    try:
        with WorkerSet(server.url, tmp_path) as fleet:
            worker = fleet.start("rr-1", "io,cpu")
            wait_for_worker(conn, "rr-1", "idle", timeout=90)
            server.stop()
            time.sleep(3)   # longer than a beat: the worker sees the outage
            server.start()
            wait_for_worker(conn, "rr-1", "idle", timeout=30)
            task_id = submit(conn, [{"filter": "brightness", "params": {"factor": 1.1}}])
            assert wait_for_status(conn, task_id, timeout=30) == "finished", worker.log_text()
            assert worker.proc.poll() is None and worker_record(conn, "rr-1")["pid"] == worker.pid
            wait_until(lambda: "rr-1" in {w.name for w in Worker.all(connection=conn)}, 10,
                       what="RQ's registration back (`rq info`)")
            log = worker.log_text()
            assert log.count("event=redis_unreachable") == 1, log     # logged once per outage
            assert "event=redis_reachable" in log
            assert "Traceback" not in log
            assert fleet.stop("rr-1", timeout=20) == 0
    finally:
        server.stop()


def _fake_start(conn, task_id, worker_name):
    """Mark a queued task started by `worker_name`, exactly as PixelfleetWorker does
    (RQ 3.0's execution records, plus the task's fence)."""
    from rq.executions import Execution

    from workers import fencing

    job = fetch_job(conn, task_id)
    queue = jobs.queue(conn, job.origin)
    assert conn.lrem(queue.key, 1, task_id) == 1
    with conn.pipeline() as pipe:
        execution = Execution.create(job, 180, pipeline=pipe, worker_name=worker_name)
        fencing.take(pipe, job.id, execution.id)
        job.prepare_for_execution(worker_name, pipeline=pipe)
        pipe.execute()
    return queue, execution


def test_reaper_requeues_at_front_counts_losses_then_fails(redis_conn):
    """The reaper's rules in-process: no live heartbeat → front of the queue; third loss → failed."""
    from workers.reaper import REAPER_LOCK_KEY, find_lost_jobs, reap_once
    from workers.registry import write_heartbeat

    task_id = enqueue_sleep(redis_conn, 0)   # never runs here: only the reaper acts
    other = enqueue_sleep(redis_conn, 0)
    # A live worker running its task is left alone, even by a pass that runs.
    queue, _ = _fake_start(redis_conn, task_id, "alive-1")
    write_heartbeat(redis_conn, {"name": "alive-1", "current_task": task_id, "last_seen": time.time()})
    assert find_lost_jobs(redis_conn) == []
    redis_conn.delete(f"{settings.PREFIX}:worker:alive-1")
    for loss in range(1, settings.MAX_WORKER_LOSSES + 1):
        if loss > 1:
            queue, _ = _fake_start(redis_conn, task_id, f"ghost-{loss}")
        redis_conn.delete(REAPER_LOCK_KEY)
        outcome = reap_once(redis_conn, by="test")
        assert [(lost.job_id, result) for lost, result in outcome] == [
            (task_id, "requeued" if loss < settings.MAX_WORKER_LOSSES else "failed")]
        assert reap_once(redis_conn) == []    # the lock: one pass per period fleet-wide
        job = fetch_job(redis_conn, task_id)
        assert job.meta["losses"] == loss
        if loss < settings.MAX_WORKER_LOSSES:
            assert job.get_status() == "queued"
            assert redis_conn.lrange(queue.key, 0, -1) == [task_id.encode(), other.encode()]   # at the front
    assert job.get_status() == "failed" and job.meta["failure_type"] == "worker_failure"
    assert redis_conn.lrange(queue.key, 0, -1) == [other.encode()]
    assert redis_conn.zcard(queue.started_job_registry.key) == 0

