"""Fencing: only the current execution of a task finishes it (workers/fencing.py).

In-process for the rules (revoke vs. commit, a lost reply, a stale progress write), and
with two real worker processes for a superseded execution's late finish.
"""
from __future__ import annotations

import time

import pytest
from rq.executions import Execution
from rq.job import Job

from tests.fleet_helpers import (LINGER_KEY, WorkerSet, enqueue_sleep, job_status, submit, wait_for_status,
                                 wait_for_worker, wait_until, worker_record)
from workers import fencing, routing, settings, stats
from workers.jobs import fetch_job
from workers.reaper import LostJob, give_back


def _start(conn, job: Job, execution_id: str) -> None:
    with conn.pipeline() as pipe:
        fencing.take(pipe, job.id, execution_id)
        pipe.execute()
    fencing.bind(job, execution_id)


def _count(pipe) -> None:
    pipe.hincrby("pixelfleet-test:commits", "n", 1)


def test_revoke_and_commit_decide_once(redis_conn):
    job = fetch_job(redis_conn, enqueue_sleep(redis_conn, 0))
    _start(redis_conn, job, "exec-a")
    assert fencing.revoke(redis_conn, job.id, "exec-a")
    assert not fencing.revoke(redis_conn, job.id, "exec-a")          # given back once only
    fencing.defer(job, "finished", _count)
    assert fencing.commit(redis_conn, job, "exec-a", "finished", _count) == fencing.FENCED
    assert redis_conn.hget("pixelfleet-test:commits", "n") is None     # neither the writes nor the deferred
    with pytest.raises(fencing.Superseded):
        fencing.save_meta(job)                                          # a stale progress write stops the task

    job_b = fetch_job(redis_conn, job.id)
    _start(redis_conn, job_b, "exec-b")
    fencing.defer(job_b, "failed", _count)                              # not for a success
    assert fencing.commit(redis_conn, job_b, "exec-b", "finished", _count) == fencing.COMMITTED
    assert redis_conn.hget("pixelfleet-test:commits", "n") == b"1"
    # A retry after a lost reply: recognised, not written twice.
    assert fencing.commit(redis_conn, job_b, "exec-b", "finished", _count) == fencing.ALREADY
    assert redis_conn.hget("pixelfleet-test:commits", "n") == b"1"
    assert not fencing.revoke(redis_conn, job.id, "exec-b")            # a finished task is not given back
    assert fencing.current_fence(redis_conn, job.id) == "done:exec-b"


def test_missing_fence_is_ours_only_while_the_task_is_started(redis_conn):
    """Redis lost the fence (crash inside fsync's window): a started task may still be
    finished by its execution, a task that is no longer started may not."""
    job = fetch_job(redis_conn, enqueue_sleep(redis_conn, 0))
    fencing.bind(job, "exec-a")
    assert fencing.commit(redis_conn, job, "exec-a", "finished", _count) == fencing.FENCED   # queued
    redis_conn.hset(job.key, "status", "started")
    assert fencing.commit(redis_conn, job, "exec-a", "finished", _count) == fencing.COMMITTED


def test_superseded_execution_late_finish_is_discarded(redis_server, redis_conn, tmp_path, monkeypatch):
    """A worker finishes its work but stalls before recording it; meanwhile the task is
    given back (as the reaper does for a worker it thinks dead) and finished by another.
    The late finish is discarded: one result, one `done`, counted once."""
    monkeypatch.setattr(routing, "TASK_FUNCTION", "tests.fleet_helpers.process_then_linger")
    names = ("fx-a", "fx-b")
    with WorkerSet(redis_server.url, tmp_path) as fleet:
        for name in names:
            fleet.start(name, "io", "--no-warmup")
        for name in names:
            wait_for_worker(redis_conn, name, "idle", timeout=90)
        redis_conn.set(LINGER_KEY, 5)
        task_id = submit(redis_conn, [{"filter": "brightness", "params": {"factor": 1.2}}])
        first = wait_until(lambda: next((n for n in names if (worker_record(redis_conn, n) or {}).get(
            "current_task") == task_id), None), 20, interval=0.05, what="a worker to take the task")
        second = names[1 - names.index(first)]
        wait_until(lambda: redis_conn.get(LINGER_KEY) is None, 20, interval=0.05, what="the work done, lingering")
        started = fencing.current_fence(redis_conn, task_id)
        assert started and ":" not in started                           # the first execution owns it
        assert give_back(redis_conn, LostJob(task_id, started, "pixelfleet:io", first, "test: presumed dead"),
                         by="test") == "requeued"
        assert wait_for_status(redis_conn, task_id, timeout=30) == "finished", fleet.logs()
        fenced_line = wait_until(lambda: next((line for line in fleet.workers[first].log_text().splitlines()
                                               if "event=fenced" in line), None), 30, what="the late finish fenced")
        assert f"task={task_id}" in fenced_line and "discarded=finished" in fenced_line
        wait_for_worker(redis_conn, first, "idle", timeout=20)         # and it goes on working

        job = fetch_job(redis_conn, task_id)
        assert job_status(redis_conn, task_id) == "finished"
        assert job.return_value()["worker"] == second
        assert len(job.results()) == 1
        totals = stats.counters(redis_conn)
        assert totals["completed"] == 1 and totals["submitted"] == 1
        assert redis_conn.zcard(settings.COMPLETIONS_KEY) == 1
        assert fencing.current_fence(redis_conn, task_id).startswith("done:")
        assert fencing.current_fence(redis_conn, task_id) != f"done:{started}"
        logs = fleet.logs()
        assert logs.count(f"task={task_id} event=done") == 1, logs
        assert f"task={task_id} event=done" in fleet.workers[second].log_text()
