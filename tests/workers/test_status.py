"""Status, listing, cancel and retry against the real redis-server and real workers."""
from __future__ import annotations

import io
import time

import pytest
from PIL import Image
from rq import SimpleWorker
from rq.job import JobStatus

from workers import failures, routing, settings, status, storage
from workers.jobs import fetch_job
from workers.registry import write_heartbeat
from workers.settings import SERIALIZER


def png(width: int = 8, height: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def burst(conn, caps=("io", "cpu")) -> None:
    SimpleWorker(routing.queues_for(caps), connection=conn, serializer=SERIALIZER,
                 exception_handlers=[failures.exception_handler]).work(burst=True, logging_level="WARNING")


def submit(conn, steps=None, data=None, **options) -> str:
    digest = storage.store_input(conn, data or png())
    return routing.enqueue_task(conn, digest, steps or [{"filter": "grayscale"}], options)


def heartbeat(conn, name, caps, state="idle"):
    write_heartbeat(conn, {"name": name, "capabilities": sorted(caps), "state": state,
                           "last_seen": time.time()}, ttl=30)


def test_unknown_task_is_none(redis_conn):
    assert status.task_status(redis_conn, "no-such-task") is None
    assert status.task_status(redis_conn, "x" * 500) is None


def test_queued_status_fields_and_waiting_reason(redis_conn):
    task_id = submit(redis_conn, [{"filter": "sharpen"}], device="gpu")
    info = status.task_status(redis_conn, task_id)
    assert info["task_id"] == task_id and info["status"] == "queued"
    assert info["queue"] == "pixelfleet:cpu+gpu" and info["capabilities"] == ["cpu", "gpu"]
    assert info["submitted_at"].endswith("Z") and info["started_at"] is None and info["ended_at"] is None
    assert info["queue_wait_ms"] >= 0 and info["processing_ms"] is None and info["result"] is None
    assert info["waiting_reason"] == "no live worker is running"
    heartbeat(redis_conn, "worker-1", {"io"})
    heartbeat(redis_conn, "worker-2", {"io", "cpu"})
    heartbeat(redis_conn, "worker-3", {"io", "cpu", "gpu"}, state="stopping")
    assert status.task_status(redis_conn, task_id)["waiting_reason"] == "no live worker has capabilities cpu+gpu"
    heartbeat(redis_conn, "worker-4", {"io", "cpu", "gpu"})
    assert status.task_status(redis_conn, task_id)["waiting_reason"] is None


def test_finished_status_carries_result_and_times(redis_conn):
    task_id = submit(redis_conn, [{"filter": "brightness"}, {"filter": "contrast"}])
    burst(redis_conn)
    info = status.task_status(redis_conn, task_id)
    assert info["status"] == "finished"
    assert info["progress"] == {"step": 2, "total": 2, "filter": "contrast"}
    assert info["result"]["width"] == 8 and len(info["result"]["timings"]) == 2
    assert info["worker"] == info["result"]["worker"]
    assert info["started_at"] <= info["ended_at"]
    assert info["queue_wait_ms"] >= 0 and info["processing_ms"] > 0
    assert "failure_type" not in info and "waiting_reason" not in info


def test_failed_status_has_type_reason_explanation_and_error(redis_conn):
    task_id = submit(redis_conn, data=b"GIF89a but not really")
    burst(redis_conn)
    info = status.task_status(redis_conn, task_id)
    assert info["status"] == "failed" and info["failure_type"] == "job_failure"
    assert info["failure_reason"].startswith("invalid_image") and info["explanation"]
    assert "InvalidImage" in info["error"]


def test_list_tasks_newest_first_bounded_and_filtered(redis_conn):
    ids = [submit(redis_conn, data=png(4 + i, 4)) for i in range(5)]
    bad = submit(redis_conn, data=b"not an image")
    burst(redis_conn)
    later = submit(redis_conn)   # stays queued: no worker after this
    listed = status.list_tasks(redis_conn)
    assert [t["task_id"] for t in listed] == [later, bad, *reversed(ids)]
    assert [t["task_id"] for t in status.list_tasks(redis_conn, limit=2)] == [later, bad]
    assert [t["task_id"] for t in status.list_tasks(redis_conn, status="failed")] == [bad]
    assert [t["task_id"] for t in status.list_tasks(redis_conn, status="queued")] == [later]
    assert len(status.list_tasks(redis_conn, status="finished")) == 5
    with pytest.raises(status.TaskError, match="status must be one of"):
        status.list_tasks(redis_conn, status="done")


def test_list_drops_tasks_rq_has_forgotten(redis_conn):
    task_id = submit(redis_conn)
    fetch_job(redis_conn, task_id).delete()
    assert status.list_tasks(redis_conn) == []
    assert redis_conn.zcard(settings.TASK_INDEX_KEY) == 0


def test_cancel_queued_task_then_no_worker_runs_it(redis_conn):
    task_id = submit(redis_conn)
    info = status.cancel_task(redis_conn, task_id)
    assert info["status"] == "canceled"
    burst(redis_conn)
    assert fetch_job(redis_conn, task_id).get_status() == JobStatus.CANCELED
    assert storage.load_output(redis_conn, task_id) is None
    with pytest.raises(status.TaskConflict, match="is canceled; only queued"):
        status.cancel_task(redis_conn, task_id)


def test_cancel_finished_task_is_a_conflict(redis_conn):
    task_id = submit(redis_conn)
    burst(redis_conn)
    with pytest.raises(status.TaskConflict) as info:
        status.cancel_task(redis_conn, task_id)
    assert info.value.http_status == 409 and "finished" in info.value.message


def test_cancel_loses_the_race_cleanly_when_a_worker_already_took_it(redis_conn):
    task_id = submit(redis_conn)
    # A worker popped it (the status is still "queued" in the hash for an instant).
    redis_conn.lrem(f"rq:queue:{routing.queue_name({'io'})}", 1, task_id)
    with pytest.raises(status.TaskConflict, match="took it"):
        status.cancel_task(redis_conn, task_id)


def test_unknown_task_cancel_and_retry_are_not_found(redis_conn):
    for operation in (status.cancel_task, status.retry_task):
        with pytest.raises(status.TaskNotFound) as info:
            operation(redis_conn, "nope")
        assert info.value.http_status == 404


def test_retry_failed_task_requeues_on_its_queue_and_keeps_history(redis_conn):
    digest = storage.store_input(redis_conn, png())
    task_id = routing.enqueue_task(redis_conn, digest, [{"filter": "sharpen"}], {})
    redis_conn.delete(storage.input_key(digest))
    burst(redis_conn)
    assert status.task_status(redis_conn, task_id)["failure_reason"].startswith("input_missing")
    storage.store_input(redis_conn, png())                 # the image is back
    info = status.retry_task(redis_conn, task_id)
    assert info["status"] == "queued" and info["queue"] == "pixelfleet:cpu"
    assert "failure_type" not in info and info["losses"] == 0
    assert info["history"][0]["failure_type"] == "job_failure"
    with pytest.raises(status.TaskConflict, match="only failed or canceled"):
        status.retry_task(redis_conn, task_id)
    burst(redis_conn, {"cpu"})
    done = status.task_status(redis_conn, task_id)
    assert done["status"] == "finished" and done["result"]["width"] == 8
    assert int(redis_conn.hget(settings.COUNTERS_KEY, "retried")) == 1


def test_retry_canceled_task(redis_conn):
    task_id = submit(redis_conn)
    sibling = submit(redis_conn)                       # same bytes: shares the stored input
    status.cancel_task(redis_conn, task_id)
    assert storage.input_holders(redis_conn, storage.digest_of(png())) == {sibling}
    assert status.retry_task(redis_conn, task_id)["status"] == "queued"
    burst(redis_conn)
    assert status.task_status(redis_conn, task_id)["status"] == "finished"
    assert status.task_status(redis_conn, sibling)["status"] == "finished"


def test_retry_refuses_clearly_when_the_input_was_freed(redis_conn, monkeypatch):
    monkeypatch.setenv("PIXELFLEET_RETRY_WINDOW_S", "0")     # no retry window: freed at the cancel
    task_id = submit(redis_conn)
    status.cancel_task(redis_conn, task_id)            # its only task ended: the input is freed
    assert not redis_conn.exists(storage.input_key(storage.digest_of(png())))
    with pytest.raises(status.InputGone) as info:
        status.retry_task(redis_conn, task_id)
    assert info.value.http_status == 409 and "submit the image again" in info.value.message
    assert status.task_status(redis_conn, task_id)["status"] == "canceled"      # unchanged
    storage.store_input(redis_conn, png())             # the same bytes again: the retry works
    assert status.retry_task(redis_conn, task_id)["status"] == "queued"


def test_retry_resets_worker_losses(redis_conn):
    task_id = submit(redis_conn)
    job = fetch_job(redis_conn, task_id)
    job.meta["losses"] = settings.MAX_WORKER_LOSSES
    redis_conn.hset(settings.LOSSES_KEY, task_id, settings.MAX_WORKER_LOSSES)
    failures.fail_lost_job(redis_conn, job, "killed three times")
    key = storage.input_key(storage.digest_of(png()))
    assert 0 < redis_conn.ttl(key) <= settings.retry_window_s()     # kept for a retry, no longer
    info = status.retry_task(redis_conn, task_id)
    assert redis_conn.ttl(key) > settings.retry_window_s()          # needed again: the full TTL
    assert info["losses"] == 0 and redis_conn.hget(settings.LOSSES_KEY, task_id) is None
    assert info["history"][-1] == {**info["history"][-1], "failure_type": "worker_failure",
                                     "losses": settings.MAX_WORKER_LOSSES}
