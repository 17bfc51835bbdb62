"""The task end to end (store → enqueue → real worker → output) and its failures.

Every run goes through the real redis-server and a real RQ SimpleWorker in this process.
"""
from __future__ import annotations

import io
import json

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from PIL import Image
from rq import SimpleWorker
from rq.exceptions import AbandonedJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.timeouts import JobTimeoutException

from filters.errors import FilterFailed, InvalidImage
from workers import failures, routing, settings, stats, storage
from workers.jobs import fetch_job
from workers.settings import SERIALIZER
from workers.status import task_status


def png(width: int = 32, height: int = 32, colour=(120, 60, 200), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def burst(conn, caps=("io", "cpu")) -> None:
    SimpleWorker(routing.queues_for(caps), connection=conn, serializer=SERIALIZER,
                 exception_handlers=[failures.exception_handler]).work(burst=True, logging_level="WARNING")


def submit(conn, data: bytes, steps, **options) -> str:
    return routing.enqueue_task(conn, storage.store_input(conn, data), steps, options)


# --- success ---------------------------------------------------------------------------
def test_task_end_to_end_stores_a_decodable_output_and_metadata(redis_conn):
    steps = [{"filter": "brightness", "params": {"factor": 1.5}}, {"filter": "sharpen", "params": {"amount": 0.5}}]
    task_id = submit(redis_conn, png(), steps)
    burst(redis_conn)
    job = fetch_job(redis_conn, task_id)
    assert job.get_status() == JobStatus.FINISHED
    meta = job.return_value()
    assert (meta["width"], meta["height"], meta["format"], meta["content_type"]) == (32, 32, "png", "image/png")
    assert [t["filter"] for t in meta["timings"]] == ["brightness", "sharpen"]
    assert all(t["ms"] >= 0 for t in meta["timings"])
    assert meta["backend"] == "cpu" and meta["worker"] and meta["queue_wait_ms"] >= 0
    assert meta["processing_ms"] > 0
    data, content_type = storage.load_output(redis_conn, task_id)
    assert content_type == "image/png" and len(data) == meta["bytes"]
    out = Image.open(io.BytesIO(data))
    assert out.size == (32, 32)
    # brightness 1.5 on a flat (120, 60, 200) image: (180, 90, 255) before sharpening (a no-op on flat)
    assert out.convert("RGB").getpixel((16, 16)) == (180, 90, 255)
    assert job.meta["progress"] == {"step": 2, "total": 2, "filter": "sharpen"}
    assert job.meta["worker"] == meta["worker"]
    assert 0 < redis_conn.ttl(storage.output_key(task_id)) <= settings.OUTPUT_TTL


def test_resize_and_jpeg_output(redis_conn):
    task_id = submit(redis_conn, png(32, 16), [{"filter": "resize", "params": {"width": 8}}], format="jpeg", quality=80)
    burst(redis_conn)
    data, content_type = storage.load_output(redis_conn, task_id)
    assert content_type == "image/jpeg"
    out = Image.open(io.BytesIO(data))
    assert out.format == "JPEG" and out.size == (8, 4)


def test_rgba_input_keeps_alpha_in_png(redis_conn):
    task_id = submit(redis_conn, png(8, 8, (10, 20, 30, 128), mode="RGBA"), [{"filter": "grayscale"}])
    burst(redis_conn)
    out = Image.open(io.BytesIO(storage.load_output(redis_conn, task_id)[0]))
    assert out.mode == "RGBA" and out.getpixel((0, 0))[3] == 128


def test_success_is_counted_and_recorded(redis_conn):
    ids = [submit(redis_conn, png(8, 8), [{"filter": "grayscale"}]) for _ in range(3)]
    burst(redis_conn)
    totals = stats.counters(redis_conn)
    assert (totals["submitted"], totals["completed"], totals["failed"]) == (3, 3, 0)
    records = stats.recent_completions(redis_conn, 60)
    assert sorted(r["task_id"] for r in records) == sorted(ids)
    assert all(r["status"] == "finished" and r["queue"] == "pixelfleet:io" for r in records)
    assert all(r["wait_ms"] >= 0 and r["processing_ms"] > 0 for r in records)


# --- failures --------------------------------------------------------------------------
def _failed(conn, task_id) -> dict:
    status = task_status(conn, task_id)
    assert status["status"] == "failed", status
    assert task_id in FailedJobRegistry(status["queue"], connection=conn).get_job_ids()
    return status


def test_bad_image_in_redis_fails_as_job_failure_with_a_reason(redis_conn):
    task_id = submit(redis_conn, b"this is not an image at all", [{"filter": "grayscale"}])
    burst(redis_conn)
    status = _failed(redis_conn, task_id)
    assert status["failure_type"] == "job_failure"
    assert status["failure_reason"].startswith("invalid_image")
    assert "Not retried" in status["explanation"]
    totals = stats.counters(redis_conn)
    assert totals["failed"] == 1 and totals["failed_job_failure"] == 1 and totals["completed"] == 0
    assert storage.load_output(redis_conn, task_id) is None


def test_input_expired_before_the_worker_came(redis_conn):
    digest = storage.store_input(redis_conn, png(8, 8))
    task_id = routing.enqueue_task(redis_conn, digest, [{"filter": "grayscale"}], {})
    redis_conn.delete(storage.input_key(digest))
    burst(redis_conn)
    status = _failed(redis_conn, task_id)
    assert status["failure_type"] == "job_failure"
    assert status["failure_reason"].startswith("input_missing") and "expired" in status["failure_reason"]


@pytest.mark.parametrize("tamper,expected", [
    (lambda p: p.update(steps=[{"filter": "blur", "params": {"radius": 999}}]), "invalid_steps: blur.radius"),
    (lambda p: p.update(steps=[{"filter": "rm -rf"}]), "invalid_steps"),
    (lambda p: p.update(digest="../../etc/passwd"), "invalid_digest"),
    (lambda p: p.update(format="exe"), "invalid_options: format"),
    (lambda p: p.pop("steps"), "invalid_payload"),
    (lambda p: p.update(steps=[{"filter": "sharpen"}]), "invalid_payload: the steps need cpu but the task is on pixelfleet:io"),
    (lambda p: p.update(device="gpu"), "invalid_payload: the steps need gpu+io"),
])
def test_tampered_payload_in_redis_is_a_job_failure(redis_conn, tamper, expected):
    task_id = submit(redis_conn, png(8, 8), [{"filter": "grayscale"}])
    job = fetch_job(redis_conn, task_id)
    payload = job.args[0]
    tamper(payload)
    job.args = (payload,)
    job.save()
    burst(redis_conn)
    status = _failed(redis_conn, task_id)
    assert status["failure_type"] == "job_failure"
    assert status["failure_reason"].startswith(expected), status["failure_reason"]


def test_payload_that_is_not_a_dict_is_a_job_failure(redis_conn):
    task_id = submit(redis_conn, png(8, 8), [{"filter": "grayscale"}])
    job = fetch_job(redis_conn, task_id)
    assert isinstance(job.args[0], dict)      # deserialise before replacing
    job.args = ("just a string",)
    job.save()
    burst(redis_conn)
    status = _failed(redis_conn, task_id)
    assert status["failure_reason"].startswith("invalid_payload: task payload must be a dict")


def test_fail_lost_job_marks_worker_failure_everywhere(redis_conn):
    task_id = submit(redis_conn, png(8, 8), [{"filter": "grayscale"}])
    job = fetch_job(redis_conn, task_id)
    job.meta["losses"] = settings.MAX_WORKER_LOSSES
    failures.fail_lost_job(redis_conn, job, "worker-9 vanished mid-task")
    status = task_status(redis_conn, task_id)
    assert status["status"] == "failed" and status["failure_type"] == "worker_failure"
    assert status["failure_reason"] == "worker-9 vanished mid-task"
    assert "poison" in status["explanation"]
    assert task_id in FailedJobRegistry("pixelfleet:io", connection=redis_conn).get_job_ids()
    assert stats.counters(redis_conn)["failed_worker_failure"] == 1


# --- classification --------------------------------------------------------------------
@pytest.mark.parametrize("exc,kind,starts", [
    (JobTimeoutException("Task exceeded maximum timeout value (120 seconds)"), "timeout", "Task exceeded"),
    (TimeoutError("deadline passed before step 3 (blur)"), "timeout", "deadline passed"),
    (AbandonedJobError(), "worker_failure", "the worker"),
    (InvalidImage("cannot identify image file"), "job_failure", "invalid_image: cannot identify"),
    (FilterFailed("resize to 99999x99999 is above the limit"), "job_failure", "filter_failed: resize"),
    (KeyError("width"), "job_failure", "unexpected KeyError"),
    (MemoryError(), "job_failure", "the task ran out of memory"),
])
def test_classify(exc, kind, starts):
    failure_type, reason, explanation = failures.classify(exc)
    assert failure_type == kind and reason.startswith(starts) and explanation


def test_exception_handler_never_raises_when_redis_is_gone():
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2,
                       retry=Retry(NoBackoff(), 0))
    job = Job.create("workers.tasks.process_image", args=({},), connection=dead)
    assert failures.exception_handler(job, ValueError, ValueError("x"), None) is True
    assert job.meta["failure_type"] == "job_failure"


# --- stats -----------------------------------------------------------------------------
def test_stats_summary_percentiles_and_window(redis_conn):
    job = Job.create("workers.tasks.process_image", args=({},), connection=redis_conn,
                     meta={"capabilities": ["io"]}, origin="pixelfleet:io")
    for ms in range(1, 101):
        stats.record_completion(redis_conn, job, "finished", wait_ms=0.0, processing_ms=float(ms))
    stats.record_completion(redis_conn, job, "failed", None, 5.0, failure_type="timeout")
    # An old record outside the window is trimmed on the next write.
    redis_conn.zadd(settings.COMPLETIONS_KEY, {json.dumps({"old": 1}): 1.0})
    stats.record_completion(redis_conn, job, "finished", 0.0, 50.0)
    assert redis_conn.zscore(settings.COMPLETIONS_KEY, json.dumps({"old": 1})) is None
    summary = stats.completion_summary(redis_conn, 60)
    assert summary["completed"] == 101 and summary["failed"] == 1
    assert summary["latency_ms"]["max"] == 100.0
    assert 49 <= summary["latency_ms"]["p50"] <= 51 and summary["latency_ms"]["p99"] >= 98
    totals = stats.counters(redis_conn)
    assert totals["completed"] == 101 and totals["failed"] == 1 and totals["failed_timeout"] == 1
    assert stats.percentile([], 50) is None


def test_job_past_its_time_limit_fails_as_timeout(redis_conn):
    # RQ's own death penalty (SIGALRM) on a job that sleeps past a 1 s limit: the handler
    # must classify RQ's JobTimeoutException as `timeout`, and status must say so.
    from workers import jobs

    job = jobs.queue(redis_conn, "pixelfleet:io").enqueue(
        "time.sleep", 3, job_timeout=1, meta={"capabilities": ["io"], "submitted_at": 0.0})
    burst(redis_conn, ("io",))
    status = task_status(redis_conn, job.id)
    assert status["status"] == "failed" and status["failure_type"] == "timeout"
    assert "1 seconds" in status["failure_reason"] or "timeout" in status["failure_reason"].lower()
    assert stats.counters(redis_conn)["failed_timeout"] == 1


def test_fleet_worker_class_runs_the_task_and_names_itself(redis_conn):
    # The same path with W-runtime's worker class (workers.worker.run_burst): the runtime
    # name reaches meta and metadata, and its failure handler is ours.
    from workers.worker import run_burst

    ok = submit(redis_conn, png(8, 8), [{"filter": "grayscale"}])
    bad = submit(redis_conn, b"no image here", [{"filter": "grayscale"}])
    assert run_burst(redis_conn, ("io",), name="burst-core") == 2
    assert task_status(redis_conn, ok)["result"]["worker"] == "burst-core"
    failed = task_status(redis_conn, bad)
    assert failed["worker"] == "burst-core" and failed["failure_type"] == "job_failure"


def test_thumbnail_of_a_photo_is_decoded_small_and_says_so(redis_conn, caplog):
    # Shrink-on-load in the worker: the result's `decode` field and the "done" log line
    # name the path; the output has the size the full decode would give.
    from filters.photos import named_photo
    from workers.worker import run_burst

    small = submit(redis_conn, png(8, 8), [{"filter": "grayscale"}])
    photo = submit(redis_conn, named_photo("2k"), [{"filter": "resize", "params": {"width": 300}}], format="jpeg")
    with caplog.at_level("INFO"):
        assert run_burst(redis_conn, ("io",), name="burst-shrink") == 2
    result = task_status(redis_conn, photo)["result"]
    assert result["decode"]["method"] == "dct" and result["decode"]["scale"] == "1/4"   # 510 >= 1.25 * 300
    assert result["decode"]["source"] == "2040x1356" and result["decode"]["decoded"] == "510x339"
    assert (result["width"], result["height"]) == (300, 199)
    assert task_status(redis_conn, small)["result"]["decode"]["method"] == "full"
    done = [r for r in caplog.records if getattr(r, "event", None) == "done"]
    assert [r.fields.get("decode") for r in done] == ["full", "dct:1/4"]
