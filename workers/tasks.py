"""The RQ job function: one image through one pipeline, output back into Redis.

Why it re-validates: the payload came out of Redis, which anything on the network may
have written; the registry checks the steps again exactly as the API did. Why it counts
round trips: the fleet's overhead over bare RQ is mostly Redis round trips, so the
"started" meta joins the worker's start MULTI (queue_started_meta; with plain RQ it
shares the input read's round trip), each later step saves progress once, and
the output, the final meta and the completion statistics join the worker's fenced commit
(workers/fencing.py), so only the execution that still owns the task writes them.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from rq import get_current_job
from rq.job import Job

from filters.errors import EngineError
from workers import fencing, runtime, settings, stats, storage
from workers.logs import get_logger, log_context, log_event
from workers.routing import capabilities_of_queue, normalise_options

log = get_logger(__name__)
CHECKED_TASK = "_pixelfleet_checked_task"   # set on the job by queue_started_meta: the checked payload


class InvalidPayload(EngineError):
    """The task's payload in Redis is not what enqueue_task writes (tampered or foreign)."""

    code = "invalid_payload"
    http_status = 422


def check_payload(payload: Any) -> dict[str, Any]:
    """The payload with options normalised; InvalidPayload/ValidationError name what is wrong."""
    from filters.registry import validate_steps

    if not isinstance(payload, dict):
        raise InvalidPayload(f"task payload must be a dict, got {type(payload).__name__}")
    missing = [k for k in ("digest", "steps") if k not in payload]
    if missing:
        raise InvalidPayload(f"task payload lacks {', '.join(missing)}")
    storage.check_digest(payload["digest"])
    steps = validate_steps(payload["steps"])
    options = normalise_options({k: payload.get(k) for k in ("format", "quality", "device")})
    return {"digest": payload["digest"], "steps": steps, **options}


def check_queue(origin: str, task: dict[str, Any]) -> None:
    """The steps must need exactly the queue's capabilities: a payload edited in Redis
    must not make a worker run work it was never routed (or able) to run."""
    from filters.registry import required_capabilities

    if not origin.startswith(settings.QUEUE_PREFIX):
        return   # enqueued by hand on a foreign queue (tests, scripts): nothing to compare
    need = required_capabilities(task["steps"], task["device"])
    if need != capabilities_of_queue(origin):
        raise InvalidPayload(f"the steps need {'+'.join(sorted(need))} but the task is on {origin}; "
                             "the payload was changed after it was enqueued")


def _current_job() -> Job:
    job = get_current_job()
    if job is None:
        raise RuntimeError("process_image runs inside an RQ worker (no current job)")
    return job


def process_image(payload: dict[str, Any]) -> dict[str, Any]:
    """Load, re-validate, filter, encode and store one task's image; returns its metadata.

    Raises EngineError subclasses for bad tasks (recorded as job_failure by
    workers.failures.exception_handler) and TimeoutError past the job's timeout.
    """
    job = _current_job()
    conn = job.connection
    # RQ's own start time, so the result's figures match task_status's (same clock marks).
    started = job.started_at.timestamp() if job.started_at else time.time()
    rt = runtime.current()
    worker = rt.name or job.worker_name or "unnamed"
    with log_context(task=job.id):
        checked = getattr(job, CHECKED_TASK, None)   # our worker checked it and wrote the meta at the start
        task = checked if checked is not None and job.args and payload is job.args[0] else check_payload(payload)
        check_queue(job.origin, task)
        if checked is not None:
            data = storage.load_input(conn, task["digest"])
        else:
            job.meta.update(started_meta(task, worker, started))
            with conn.pipeline(transaction=False) as pipe:
                fencing.save_meta(job, pipe)
                (saved,), data = storage.load_input_with(pipe, conn, task["digest"])   # one round trip
            fencing.check_saved(job, saved)
            if data is None:
                storage.load_input(conn, task["digest"])   # raises InputMissing with the full story
        return _run(job, task, data, started, worker)


def started_meta(task: dict[str, Any], worker: str, started: float) -> dict[str, Any]:
    """What a running task shows (worker, start, step 1 of N) from the moment it starts."""
    steps = task["steps"]
    return {"worker": worker, "started_at": started,
            "progress": {"step": 1, "total": len(steps), "filter": steps[0].name}}


def queue_started_meta(job: Job, worker: str, pipe: Any) -> None:
    """Add the started meta to `pipe`, the MULTI in which the worker's execution takes the
    task's fence (so no fence check is needed), and keep the checked payload on the job
    so process_image neither checks it nor writes the meta again: one write round trip
    less per task. A payload that does not check out is left to process_image, which
    fails the task saying why."""
    try:
        task = check_payload(job.args[0] if job.args else None)
    except Exception:   # noqa: BLE001 - process_image raises it again, as the task's failure
        return
    started = job.started_at.timestamp() if job.started_at else time.time()
    job.meta.update(started_meta(task, worker, started))
    pipe.hset(job.key, "meta", job.serializer.dumps(job.meta))
    setattr(job, CHECKED_TASK, task)


def _run(job: Job, task: dict[str, Any], data: bytes, started: float, worker: str) -> dict[str, Any]:
    from filters.io import CONTENT_TYPES, encode_image
    from filters.pipeline import decode_for, run_pipeline

    conn = job.connection
    steps = task["steps"]
    calls = 0

    def progress(_index: int, total: int, name: str) -> None:
        # The first step's progress went out with the input read; later steps save once each.
        nonlocal calls
        calls += 1
        if calls > 1:
            job.meta["progress"] = {"step": calls, "total": total, "filter": name}
            try:
                fencing.save_meta(job)   # Superseded stops a task another worker now owns
            except fencing.REDIS_ERRORS:
                pass   # progress is best effort: an outage must not fail the task

    # Decoded as small as the first geometric step allows (filters.shrink): a 24 MP JPEG
    # headed for a 512-pixel thumbnail is decoded at 1/8 scale by libjpeg.
    decoded, applied = decode_for(data, steps)
    job.meta["decode"] = decoded.label   # the worker's "done" line shows it
    deadline = time.monotonic() + (job.timeout or settings.TASK_TIMEOUT)
    backend = runtime.backend_for(task["device"])
    result = run_pipeline(decoded.image, applied.steps, backend=backend, progress=progress,
                          deadline=deadline, upscale=applied.upscale)
    encoded = encode_image(result.image, task["format"], task["quality"])
    ended = time.time()
    enqueued = job.enqueued_at.timestamp() if job.enqueued_at else job.meta.get("submitted_at", started)
    height, width = result.image.shape[:2]
    metadata = {
        "width": int(width), "height": int(height), "format": task["format"],
        "content_type": CONTENT_TYPES[task["format"]], "bytes": len(encoded),
        "timings": [{"filter": t.name, "ms": round(t.ms, 3)} for t in result.timings],
        "decode": decoded.describe(),
        "backend": result.backend, "device": result.device, "worker": worker,
        "queue_wait_ms": round(max(0.0, started - enqueued) * 1000, 3),
        "processing_ms": round((ended - started) * 1000, 3),
    }
    def writes(pipe: Any) -> None:
        storage.store_output(conn, job.id, encoded, task["format"], pipeline=pipe)
        stats.record_completion(conn, job, "finished", metadata["queue_wait_ms"],
                                metadata["processing_ms"], pipeline=pipe)

    # Written by the worker's fenced commit, with RQ's status and result: exactly once,
    # and never by an execution that lost the task to another worker.
    fencing.defer(job, "finished", writes)
    # DEBUG: the worker already logs "done" per task; this adds the task's own figures.
    log_event(log, "processed", logging.DEBUG, queue=job.origin, steps=len(steps), backend=result.backend,
              decode=decoded.label, size=f"{width}x{height}", bytes=len(encoded),
              wait_ms=metadata["queue_wait_ms"], ms=metadata["processing_ms"])
    return metadata
