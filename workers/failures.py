"""Why a task failed, in one of three words, with a reason a person can act on.

- job_failure: the task itself is bad (not an image, a filter refused it, tampered data);
  retrying would fail the same way, so it is not retried.
- timeout: it ran past its time limit.
- worker_failure: the worker died or vanished mid-task, MAX_WORKER_LOSSES times.

The worker (W-runtime) installs `exception_handler` as its RQ exception handler and the
reaper calls `fail_lost_job` on its last strike; both end in `record_failure` meta and
one completion record, so the API, the dashboard and /metrics all read the same thing.
A task failed here has ended, so its input reference is released (workers.storage).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import redis
from rq.exceptions import AbandonedJobError, DeserializationError
from rq.job import Job
from rq.job_lifecycle import record_job_failure
from rq.timeouts import JobTimeoutException

from filters.errors import EngineError
from workers import fencing, jobs, notify, settings, stats, storage
from workers.jobs import StartedJobRegistry
from workers.logs import get_logger, log_event

JOB_FAILURE = "job_failure"
TIMEOUT = "timeout"
WORKER_FAILURE = "worker_failure"
FAILURE_TYPES = (JOB_FAILURE, TIMEOUT, WORKER_FAILURE)

log = get_logger(__name__)

_EXPLANATIONS = {
    "invalid_steps": "The steps stored with the task are not valid; fix the request. Not retried.",
    "invalid_image": "The input is not an image we can decode; send a PNG, JPEG, WebP, GIF, BMP or TIFF. Not retried.",
    "image_too_large": "The input has more bytes than the limit; send a smaller image. Not retried.",
    "too_many_pixels": "The input has more pixels than the limit; send a smaller image. Not retried.",
    "filter_failed": "A filter refused this input with these parameters; change them. Not retried.",
    "input_missing": "The input image expired from Redis before a worker took the task; submit it again.",
    "invalid_digest": "The task points at no valid input; submit the image again.",
    "invalid_payload": "The task's data in Redis is not what the API enqueued (edited or foreign). Not retried.",
    "invalid_options": "The task's format, quality, device or timeout is not valid; fix the request. Not retried.",
    "untrusted_task": ("The task's record in Redis was not written by the API (it names other code, or "
                       "cannot be read as JSON); it was not run. Not retried. Check who can write to Redis."),
}


def explain(code: str) -> str:
    """The explanation recorded with an engine error `code`."""
    return _EXPLANATIONS.get(code, "The engine refused this task; it will fail the same way again. Not retried.")


def classify(exc: BaseException) -> tuple[str, str, str]:
    """(failure_type, reason, explanation) for an exception raised by or around a task.

    Never raises: whatever arrives is described, so a strange error cannot crash a worker.
    """
    if isinstance(exc, (JobTimeoutException, TimeoutError)):
        reason = str(exc) or "the task ran past its time limit"
        return TIMEOUT, reason, ("The task ran longer than its timeout "
                                 f"(default {settings.TASK_TIMEOUT} s, option `timeout`); use a smaller "
                                 "image or fewer steps, or allow more time.")
    if isinstance(exc, AbandonedJobError):
        return WORKER_FAILURE, "the worker running the task stopped answering", (
            "The worker died or lost Redis mid-task and RQ abandoned the task.")
    if isinstance(exc, EngineError):
        return JOB_FAILURE, f"{exc.code}: {exc.message}", _EXPLANATIONS.get(
            exc.code, "The engine refused this task; it will fail the same way again. Not retried.")
    if isinstance(exc, DeserializationError):
        return JOB_FAILURE, f"task data in Redis could not be read: {exc.__cause__ or exc}; it was not run", (
            _EXPLANATIONS["untrusted_task"])
    if isinstance(exc, MemoryError):
        return JOB_FAILURE, "the task ran out of memory", (
            "The image and steps need more memory than the worker has; use a smaller image.")
    name = type(exc).__name__
    message = str(exc)[:500] or "(no message)"
    return JOB_FAILURE, f"unexpected {name}: {message}", (
        "An unexpected error in the task (a bad payload or a bug); see the worker's log. Not retried.")


def record_failure(job: Job, failure_type: str, reason: str, explanation: str,
                   pipeline: redis.client.Pipeline | None = None) -> None:
    """Write the failure fields into job.meta (one HSET, or on `pipeline`)."""
    job.meta.update({"failure_type": failure_type, "failure_reason": reason, "explanation": explanation})
    if pipeline is None:
        job.save_meta()
    else:
        pipeline.hset(job.key, "meta", job.serializer.dumps(job.meta))


def epoch(moment: datetime | None) -> float | None:
    """An RQ timestamp as epoch seconds (None stays None)."""
    return moment.timestamp() if moment else None


def run_times_ms(job: Job, ended: float | None = None) -> tuple[float | None, float | None]:
    """(queue wait, processing) in ms from the job's own timestamps; None where unknown."""
    enqueued = epoch(job.enqueued_at) or job.meta.get("submitted_at")
    started = epoch(job.started_at) or job.meta.get("started_at")
    ended = ended or epoch(job.ended_at) or time.time()
    wait = (started - enqueued) * 1000 if started and enqueued else None
    processing = (ended - started) * 1000 if started else None
    return wait, processing


def exception_handler(job: Job, exc_type: type | None, exc_value: BaseException | None, tb: Any) -> bool:
    """RQ exception handler: classify, record meta and statistics, log one line.

    Returns True so RQ's own handling (FailedJobRegistry, failure Result) still runs.
    Errors here are logged, never raised: a broken handler must not kill the worker.
    """
    try:
        exc = exc_value if exc_value is not None else (exc_type() if exc_type else Exception("unknown"))
        failure_type, reason, explanation = classify(exc)
        wait_ms, processing_ms = run_times_ms(job)

        def writes(pipe: redis.client.Pipeline) -> None:
            record_failure(job, failure_type, reason, explanation, pipeline=pipe)
            stats.record_completion(job.connection, job, "failed", wait_ms, processing_ms,
                                    failure_type=failure_type, pipeline=pipe)

        # In the worker's fenced commit: a superseded execution's failure is not recorded.
        fencing.defer(job, "failed", writes)
        log_event(log, "failure_recorded", task=job.id, queue=job.origin, failure_type=failure_type, reason=reason)
    except Exception:  # noqa: BLE001 - the handler must not take the worker down
        log.exception("could not record the failure of task %s", getattr(job, "id", "?"),
                      extra={"event": "failure_not_recorded"})
    return True


def fail_lost_job(conn: redis.Redis, job: Job, reason: str) -> None:
    """Fail a task whose workers kept vanishing (the reaper's last strike): worker_failure.

    Removes it from its queue's started registry, marks it FAILED in RQ's own registries
    (so `rq info` and Job.get_status agree) and records meta and statistics, in one MULTI.
    """
    explanation = (f"The task was running on a worker that died or vanished {job.meta.get('losses', '?')} "
                   f"time(s) (limit {settings.MAX_WORKER_LOSSES}); it is failed so that one poison "
                   "image cannot take the fleet down. Retry it once the cause is fixed.")
    started = jobs.registry(StartedJobRegistry, conn, job.origin)
    stale = [m for m in conn.zrange(started.key, 0, -1) if m.decode().split(":", 1)[0] == job.id]
    ended = time.time()
    wait_ms, processing_ms = run_times_ms(job, ended)
    job.ended_at = datetime.fromtimestamp(ended, timezone.utc)
    with conn.pipeline() as pipe:
        if stale:
            pipe.zrem(started.key, *stale)
        record_job_failure(job, f"worker_failure: {reason}", pipe)
        record_failure(job, WORKER_FAILURE, reason, explanation, pipeline=pipe)
        stats.record_completion(conn, job, "failed", wait_ms, processing_ms,
                                failure_type=WORKER_FAILURE, pipeline=pipe)
        notify.push_done(conn, job.id, "failed", pipeline=pipe)
        pipe.execute()
    storage.release_task_input(conn, job)
    log_event(log, "failure_recorded", task=job.id, queue=job.origin, failure_type=WORKER_FAILURE, reason=reason)
