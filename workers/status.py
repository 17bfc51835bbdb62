"""What a task is doing, in the words the API returns; cancel and retry.

Why built on RQ's own objects (Job.fetch, latest_result, registries, job.cancel,
registry.requeue): these are real RQ jobs, so `rq info` and this module must never
disagree. Our additions live in job.meta (see workers.routing and workers.failures).
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Callable

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.results import Result

from filters.errors import EngineError
from workers import failures, jobs, notify, settings, storage
from workers.jobs import CanceledJobRegistry, FailedJobRegistry
from workers.logs import get_logger, log_event, utc_timestamp

log = get_logger(__name__)

STATUSES = ("queued", "started", "finished", "failed", "canceled")
MAX_LIST = 1000
_RQ_TO_OURS = {
    JobStatus.QUEUED: "queued", JobStatus.DEFERRED: "queued", JobStatus.SCHEDULED: "queued",
    JobStatus.STARTED: "started", JobStatus.FINISHED: "finished", JobStatus.FAILED: "failed",
    JobStatus.CANCELED: "canceled", JobStatus.STOPPED: "canceled",
}
_LIVE_STATES = ("idle", "busy", "warming", "paused")
_HISTORY_KEEP = 10


class TaskError(EngineError):
    """Base of the errors the API maps to a 4xx; `http_status` and `code` say which."""

    code = "task_error"
    http_status = 400


class TaskNotFound(TaskError):
    """No such task id (never existed, or RQ's result TTL expired)."""

    code = "task_not_found"
    http_status = 404


class TaskConflict(TaskError):
    """The task is not in a state that allows the operation (cancel a started task…)."""

    code = "task_conflict"
    http_status = 409


class InputGone(TaskConflict):
    """A retry needs the task's input, which was freed when the task ended."""

    code = "input_gone"


def _iso(moment: datetime | float | None) -> str | None:
    if moment is None:
        return None
    return utc_timestamp(moment.timestamp() if isinstance(moment, datetime) else float(moment))


def _status_of(job: Job) -> str:
    raw = job.get_status(refresh=False)
    return _RQ_TO_OURS.get(raw, str(raw.value if hasattr(raw, "value") else raw))


def _fetch(conn: redis.Redis, task_id: str) -> Job:
    if not isinstance(task_id, str) or not task_id or len(task_id) > 128:
        raise TaskNotFound(f"task id {task_id!r:.140} is not valid")
    try:
        return jobs.fetch_job(conn, task_id)
    except NoSuchJobError:
        raise TaskNotFound(f"task {task_id} not found (never submitted, or expired after "
                           f"{settings.RESULT_TTL} s)") from None


def waiting_reason(caps: list[str] | frozenset[str], workers: list[dict[str, Any]],
                   paused: frozenset[str] | set[str] = frozenset()) -> str | None:
    """Why a queued task cannot be taken, in words; None when some live worker can take it.

    `paused`: the paused queue names (workers.queues.paused_queues), when the caller read them.
    """
    need = frozenset(caps)
    if need and paused:
        from workers.routing import queue_name
        name = queue_name(need)
        if name in paused:
            return f"queue {name} is paused: its tasks wait until it is resumed"
    live = [w for w in workers if w.get("state") in _LIVE_STATES]
    if not live:
        return "no live worker is running"
    if any(need <= frozenset(w.get("capabilities") or ()) for w in live):
        return None
    return f"no live worker has capabilities {'+'.join(sorted(need))}"


def summary(job: Job, now: float | None = None) -> dict[str, Any]:
    """The status dict from the job hash alone (no extra round trip): what lists show."""
    now = now or time.time()
    meta = job.meta or {}
    status = _status_of(job)
    enqueued = failures.epoch(job.enqueued_at) or meta.get("submitted_at")
    started = failures.epoch(job.started_at) if status != "queued" else None
    ended = failures.epoch(job.ended_at) if status in ("finished", "failed") else None
    wait_end = started or (now if status == "queued" else None)
    info: dict[str, Any] = {
        "task_id": job.id,
        "status": status,
        "progress": meta.get("progress"),
        "worker": meta.get("worker") or job.worker_name or None,
        "queue": job.origin,
        "capabilities": meta.get("capabilities", []),
        "device": meta.get("device"),
        "source": meta.get("source"),
        "description": job.description,
        "submitted_at": _iso(meta.get("submitted_at") or enqueued),
        "started_at": _iso(started),
        "ended_at": _iso(ended),
        "queue_wait_ms": round((wait_end - enqueued) * 1000, 3) if wait_end and enqueued else None,
        "processing_ms": round(((ended or now) - started) * 1000, 3) if started else None,
        "losses": int(meta.get("losses") or 0),
        "result": None,
    }
    if status == "failed" or meta.get("failure_type"):
        info.update({k: meta.get(k) for k in ("failure_type", "failure_reason", "explanation")})
    if status == "queued":
        info["waiting_reason"] = None
    if meta.get("history"):
        info["history"] = meta["history"]
    _report_unreadable(job, info)
    return info


def _report_unreadable(job: Job, info: dict[str, Any]) -> None:
    """A job record we could not parse (planted pickle, garbage) reads as a job_failure
    that says what was wrong: never a 500, never unpickled (workers.jobs.FleetJob)."""
    problems = getattr(job, "unreadable", None)
    if not problems:
        return
    info.update(status="failed", result=None, failure_type=failures.JOB_FAILURE,
                failure_reason="the task's record in Redis is unreadable: " + "; ".join(problems),
                explanation=failures.explain("untrusted_task"))


# What a status needs from the job hash: everything but `data` (the payload), one HMGET.
STATUS_FIELDS = ("status", "origin", "description", "worker_name", "created_at", "enqueued_at",
                 "started_at", "ended_at", "meta")


def queue_status_reads(pipe: Any, task_id: str) -> None:
    """Add a status's two reads to `pipe` (sync or redis.asyncio): the job's fields and
    its latest RQ result. One round trip, no image bytes, no payload."""
    pipe.hmget(Job.key_for(task_id), STATUS_FIELDS)
    pipe.xrevrange(Result.get_key(task_id), "+", "-", count=1)


ENDED_WITH_RESULT = (b"finished", b"failed")   # the states whose status includes the latest result


async def aread_status(aconn: Any, task_id: str) -> tuple[list[bytes | None], list[Any]]:
    """queue_status_reads' answers for a poller: the job's fields, then its latest result
    only once the task has one. A poll of a queued or running task (nearly every poll)
    is then one plain HMGET, not a two-command pipeline: less of the API's CPU per poll."""
    fields = await aconn.hmget(Job.key_for(task_id), STATUS_FIELDS)
    if not fields or fields[0] not in ENDED_WITH_RESULT:
        return fields, []
    return fields, await aconn.xrevrange(Result.get_key(task_id), "+", "-", count=1)


def status_from_reads(task_id: str, fields: list[bytes | None], results: list[Any],
                      fleet: Callable[[], tuple[list[dict[str, Any]], frozenset[str]]]) -> dict[str, Any] | None:
    """The full status dict (docs/INTERFACES.md) from queue_status_reads' answers, or None
    for an unknown task. `fleet` — (live worker records, paused queue names) — is called
    only for a queued task (its waiting reason)."""
    if not fields or fields[0] is None:
        return None
    conn = settings.get_redis()   # not used for I/O: RQ's objects want one
    # FleetJob + the JSON serializer: a planted pickle in meta is described, never loaded.
    job = jobs.FleetJob(task_id, connection=conn, serializer=settings.SERIALIZER)
    try:
        job.restore({**{k: v for k, v in zip(STATUS_FIELDS, fields) if v is not None}, "data": b""})
    except Exception:  # noqa: BLE001 - a job hash written by something else: unknown to us
        log_event(log, "unreadable_job", task=task_id)
        return None
    info = summary(job)
    if info["status"] in ("finished", "failed") and results:
        result_id, payload = results[0]
        try:
            latest = Result.restore(task_id, result_id.decode(), payload, connection=conn,
                                    serializer=settings.SERIALIZER)
        except Exception as exc:  # noqa: BLE001 - a planted or torn result: a reason, not a 500
            job.unreadable.append(f"result: {str(exc.__cause__ or exc)[:300]}")
            latest = None
        if latest is not None and latest.type == latest.Type.SUCCESSFUL:
            info["result"] = latest.return_value
        elif latest is not None and latest.exc_string:
            info["error"] = _last_line(latest.exc_string)
        _report_unreadable(job, info)
    if info["status"] == "failed" and not info.get("failure_type"):
        # Failed outside our exception handler (a plain `rq worker`): say what we know.
        info.update(failure_type=failures.JOB_FAILURE,
                    failure_reason=info.get("error") or "the task failed",
                    explanation="Failed without a recorded classification; see the worker's log.")
    if info["status"] == "queued":
        workers, paused = fleet()
        info["waiting_reason"] = waiting_reason(info["capabilities"], workers, paused)
    return info


def task_status(conn: redis.Redis, task_id: str) -> dict[str, Any] | None:
    """The full status dict of one task (docs/INTERFACES.md), or None if unknown.

    One round trip (plus the worker registry for a queued task): cheap enough for
    clients that poll (the API's async status path uses the same two functions).
    """
    if not isinstance(task_id, str) or not task_id or len(task_id) > 128:
        return None
    from workers.queues import paused_queues
    from workers.registry import read_workers

    with conn.pipeline(transaction=False) as pipe:
        queue_status_reads(pipe, task_id)
        fields, results = pipe.execute()
    return status_from_reads(task_id, fields, results, lambda: (read_workers(conn), paused_queues(conn)))


def _last_line(exc_string: str) -> str:
    lines = [line for line in exc_string.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else exc_string)[:1000]


def list_tasks(conn: redis.Redis, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Summaries of the newest tasks (by submission), optionally of one status only.

    Bounded: at most `limit` (≤ MAX_LIST) results, reading the index in pipelined
    batches and looking at no more than 10×MAX_LIST entries. Entries whose job RQ has
    already expired are dropped from the index on the way.
    """
    if status is not None and status not in STATUSES:
        raise TaskError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    limit = max(1, min(int(limit), MAX_LIST))
    batch = limit if status is None else max(limit, 200)
    found: list[dict[str, Any]] = []
    now = time.time()
    for offset in range(0, 10 * MAX_LIST, batch):
        ids = [i.decode() for i in conn.zrevrange(settings.TASK_INDEX_KEY, offset, offset + batch - 1)]
        if not ids:
            break
        fetched = jobs.fetch_jobs(conn, ids)
        gone = [i for i, job in zip(ids, fetched) if job is None]
        if gone:
            conn.zrem(settings.TASK_INDEX_KEY, *gone)
        for job in fetched:
            if job is None:
                continue
            info = summary(job, now)
            if status is None or info["status"] == status:
                found.append(info)
                if len(found) >= limit:
                    return found
        if len(ids) < batch:
            break
    return found


def cancel_task(conn: redis.Redis, task_id: str) -> dict[str, Any]:
    """Cancel a task that no worker has taken yet; returns its new status dict.

    Race-free: the task is first removed from its queue with LREM; only if that removal
    succeeded is it marked canceled, so a worker can never be running a canceled task.
    Raises TaskNotFound (404) or TaskConflict (409, with the current status).
    """
    job = _fetch(conn, task_id)
    status = _status_of(job)
    if status != "queued":
        raise TaskConflict(f"task {task_id} is {status}; only queued tasks can be canceled")
    removed = jobs.queue(conn, job.origin).remove(job.id)
    if not removed:
        now_status = _status_of(_fetch(conn, task_id))
        raise TaskConflict(f"task {task_id} is {now_status}; a worker took it before it could be canceled")
    job.cancel()
    storage.release_task_input(conn, job)
    notify.push_done(conn, job.id, "canceled")
    log_event(log, "canceled", task=job.id, queue=job.origin)
    return summary(job)


def retry_task(conn: redis.Redis, task_id: str) -> dict[str, Any]:
    """Put a failed or canceled task back on its own queue, at the back; returns its status.

    The previous failure is kept in meta["history"] (last 10) and the failure fields and
    worker-loss count are reset, so the retried task gets a fresh MAX_WORKER_LOSSES.
    The task takes a reference on its input again; InputGone (409) when the input was
    freed (no other task shares it). Raises TaskNotFound (404) or TaskConflict (409)
    for any other status.
    """
    job = _fetch(conn, task_id)
    status = _status_of(job)
    if status not in ("failed", "canceled"):
        raise TaskConflict(f"task {task_id} is {status}; only failed or canceled tasks can be retried")
    digest = storage.task_digest(job)
    try:
        storage.acquire_input(conn, job.id, digest)   # the retry needs its input again
    except (storage.InputMissing, storage.InvalidDigest):
        raise InputGone(f"task {task_id} cannot be retried: its input image is no longer stored (inputs are "
                        f"freed when their last task ends); submit the image again") from None
    from workers.storage_budget import UNKNOWN_OUTPUT_BYTES
    storage.reserve_output(conn, job.id, int(job.meta.get("reserve_bytes") or UNKNOWN_OUTPUT_BYTES))
    meta = job.meta
    history = list(meta.get("history") or [])
    history.append({"status": status, "failure_type": meta.get("failure_type"),
                    "failure_reason": meta.get("failure_reason"), "losses": meta.get("losses", 0),
                    "ended_at": _iso(failures.epoch(job.ended_at) or time.time())})
    for key in ("failure_type", "failure_reason", "explanation", "progress", "worker", "started_at"):
        meta.pop(key, None)
    meta["losses"] = 0
    meta["history"] = history[-_HISTORY_KEEP:]
    job.save_meta()
    conn.hdel(settings.LOSSES_KEY, job.id)
    notify.forget_done(conn, job.id)
    registry_class = CanceledJobRegistry if job.get_status(refresh=False) == JobStatus.CANCELED else FailedJobRegistry
    registry = jobs.registry(registry_class, conn, job.origin)
    try:
        job = registry.requeue(job)
    except Exception as exc:   # InvalidJobOperation: someone else retried it first
        storage.release_task_input(conn, job)   # a no-op if that retry queued it
        raise TaskConflict(f"task {task_id} could not be retried: it is no longer {status} ({type(exc).__name__})") from None
    conn.hincrby(settings.COUNTERS_KEY, "retried", 1)
    log_event(log, "retried", task=job.id, queue=job.origin, previous=status)
    return summary(job)


def task_input_digest(conn: redis.Redis, task_id: str) -> str | None:
    """The digest of the task's stored input image (workers.storage), None if not recorded.

    The payload is read back from Redis: untrusted, so only a string digest is returned.
    """
    job = _fetch(conn, task_id)
    payload = job.args[0] if job.args else None
    digest = payload.get("digest") if isinstance(payload, dict) else None
    return digest if isinstance(digest, str) else None
