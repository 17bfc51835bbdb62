"""A real worker process: takes tasks, stops gracefully, hands back on a forced stop."""
from __future__ import annotations

import signal
import time


from tests.fleet_helpers import (SLOW_QUEUE, WorkerSet, job_status, submit, submit_slow, wait_for_status, wait_for_worker,
                                 wait_until, worker_record)
from workers import settings
from workers.jobs import fetch_job
from workers.worker import EXIT_RESTART, run_burst

BRIGHTNESS = [{"filter": "brightness", "params": {"factor": 1.3}}]


def _busy_with(conn, name, task_id):
    record = worker_record(conn, name)
    return record is not None and record["current_task"] == task_id and record["state"] == "busy"


def test_worker_takes_a_task_and_reports_it(redis_server, redis_conn, tmp_path):
    with WorkerSet(redis_server.url, tmp_path) as fleet:
        worker = fleet.start("wp-1", "io")
        wait_for_worker(redis_conn, "wp-1", "idle", timeout=90)
        task_id = submit(redis_conn, BRIGHTNESS)
        assert wait_for_status(redis_conn, task_id, timeout=30) == "finished", worker.log_text()
        result = fetch_job(redis_conn, task_id).return_value()
        assert result["worker"] == "wp-1" and result["backend"] == "cpu"
        assert (result["width"], result["height"]) == (64, 64)
        record = wait_until(lambda: (r := worker_record(redis_conn, "wp-1")) and r["done"] == 1 and r, 5,
                            what="done counter")
        assert record["failed"] == 0 and record["current_task"] is None
        assert f"task={task_id} event=done queue=pixelfleet:io status=finished" in worker.log_text()


def test_sigterm_mid_task_finishes_it_then_exits_0(redis_server, redis_conn, tmp_path):
    with WorkerSet(redis_server.url, tmp_path) as fleet:
        worker = fleet.start("wp-2", "io")
        wait_for_worker(redis_conn, "wp-2", "idle", timeout=90)
        task_id = submit_slow(redis_conn, 4.0)
        wait_until(lambda: _busy_with(redis_conn, "wp-2", task_id), 20, interval=0.05, what="busy")
        worker.signal(signal.SIGTERM)
        wait_until(lambda: (worker_record(redis_conn, "wp-2") or {}).get("state") == "stopping", 5,
                   interval=0.05, what="stopping state")
        assert worker.wait(timeout=90) == 0
        assert job_status(redis_conn, task_id) == "finished"
        assert "event=stopping" in worker.log_text()


def test_second_signal_hands_the_task_back_without_counting_a_loss(redis_server, redis_conn, tmp_path):
    with WorkerSet(redis_server.url, tmp_path) as fleet:
        worker = fleet.start("wp-3", "io")
        wait_for_worker(redis_conn, "wp-3", "idle", timeout=90)
        task_id = submit_slow(redis_conn, 12.0)   # long: it is handed back, never waited for
        wait_until(lambda: _busy_with(redis_conn, "wp-3", task_id), 20, interval=0.05, what="busy")
        worker.signal(signal.SIGTERM)
        time.sleep(1.2)   # two signals within 1 s count as one (terminal + parent)
        worker.signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        assert job_status(redis_conn, task_id) == "queued"
        assert redis_conn.lindex(f"rq:queue:{SLOW_QUEUE}", 0).decode() == task_id   # at the front
        assert fetch_job(redis_conn, task_id).meta.get("losses", 0) == 0
        assert redis_conn.hget(settings.LOSSES_KEY, task_id) is None
        assert "event=task_handed_back" in worker.log_text()
        # Not lost: queued again at the front, so the next worker takes it first (the
        # SIGKILL test shows such a requeued task completing on another worker).


def test_memory_ceiling_stops_worker_after_its_task(redis_server, redis_conn, tmp_path):
    with WorkerSet(redis_server.url, tmp_path) as fleet:
        worker = fleet.start("wp-4", "io", "--no-warmup", PIXELFLEET_WORKER_MAX_RSS_MB="1")
        wait_for_worker(redis_conn, "wp-4", "idle", timeout=90)
        task_id = submit(redis_conn, BRIGHTNESS)
        assert worker.wait(timeout=60) == EXIT_RESTART
        assert job_status(redis_conn, task_id) == "finished"   # the task itself completed
        assert "memory ceiling" in worker.log_text()


def test_run_burst_processes_what_it_can_serve(redis_conn):
    io_task = submit(redis_conn, BRIGHTNESS)
    cpu_task = submit(redis_conn, [{"filter": "sharpen", "params": {}}])
    assert run_burst(redis_conn, capabilities=("io",)) == 1
    assert job_status(redis_conn, io_task) == "finished"
    assert job_status(redis_conn, cpu_task) == "queued"       # an io worker never takes it
    assert run_burst(redis_conn, capabilities="io,cpu") == 1
    assert job_status(redis_conn, cpu_task) == "finished"


def test_time_limit_fails_the_task_as_timeout_and_the_worker_lives_on(redis_server, redis_conn, tmp_path):
    from tests.fleet_helpers import SLOW_STEP, png_bytes, slow_task_plan

    steps, side = slow_task_plan(6.0)
    with WorkerSet(redis_server.url, tmp_path) as fleet:
        worker = fleet.start("wp-5", "io")
        wait_for_worker(redis_conn, "wp-5", "idle", timeout=90)
        task_id = submit(redis_conn, [SLOW_STEP] * steps, png_bytes(side, side, smooth=True), timeout=1)
        assert wait_for_status(redis_conn, task_id, ("failed",), timeout=30) == "failed", worker.log_text()
        meta = fetch_job(redis_conn, task_id).meta
        assert meta["failure_type"] == "timeout", meta
        record = wait_until(lambda: (r := worker_record(redis_conn, "wp-5")) and r["state"] == "idle" and r, 10,
                            what="worker idle again")
        assert record["pid"] == worker.pid and record["failed"] == 1
