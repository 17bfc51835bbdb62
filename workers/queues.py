"""Queues as an operator sees them: the age of the oldest task, pause, resume, empty.

Why a set of paused names in Redis (settings.PAUSED_QUEUES_KEY) instead of RQ's
`rq suspend`: suspension stops a whole worker, while a pause must hold one queue (say
the gpu one during a driver update) and let every worker go on with the others. The
tasks stay in their list, untouched; a worker simply does not dequeue from a paused
queue (workers.worker reads the set at most every PAUSE_CHECK_S through PausedQueues).
Emptying cancels the queued tasks (RQ's CanceledJobRegistry), so each can still be
retried, instead of deleting them as `rq empty` does.
"""
from __future__ import annotations

import time
from typing import Any

import redis
from rq.job import Job
from rq.utils import str_to_date

from filters.errors import EngineError
from workers import jobs, settings, storage
from workers.logs import get_logger, log_event, utc_timestamp
from workers.routing import all_queue_names, parse_capabilities, queue_name

log = get_logger(__name__)


class UnknownQueue(EngineError):
    """The name is not one of the fleet's queues (404 at the API)."""

    code = "unknown_queue"
    http_status = 404


def check_queue(name: str) -> str:
    """A queue's full name from its full name ("pixelfleet:cpu+io") or its label ("cpu+io")."""
    text = str(name or "").strip()
    known = all_queue_names()
    if text in known:
        return text
    try:
        full = queue_name(parse_capabilities(text))
    except ValueError:
        full = None
    if full in known:
        return full
    raise UnknownQueue(f"no queue {text[:80]!r}; the fleet's queues are {', '.join(known)} "
                       "(the part after 'pixelfleet:' is accepted too)", {"queue": text[:80]})


# --- Pause --------------------------------------------------------------------------------
def paused_queues(conn: redis.Redis) -> frozenset[str]:
    """The names of the paused queues (one SMEMBERS)."""
    return frozenset(m.decode() if isinstance(m, bytes) else str(m)
                     for m in conn.smembers(settings.PAUSED_QUEUES_KEY))


def pause_queue(conn: redis.Redis, name: str) -> bool:
    """Pause a queue; True when it was running until now. Its tasks stay where they are."""
    name = check_queue(name)
    changed = bool(conn.sadd(settings.PAUSED_QUEUES_KEY, name))
    log_event(log, "queue_paused" if changed else "queue_already_paused", queue=name)
    return changed


def resume_queue(conn: redis.Redis, name: str) -> bool:
    """Resume a paused queue; True when it was paused until now."""
    name = check_queue(name)
    changed = bool(conn.srem(settings.PAUSED_QUEUES_KEY, name))
    log_event(log, "queue_resumed" if changed else "queue_not_paused", queue=name)
    return changed


class PausedQueues:
    """The paused set as a worker sees it: re-read at most every `ttl` seconds.

    One SMEMBERS a second per worker instead of one per task. A Redis error keeps the last
    answer (the dequeue that follows reports the outage the way it always does).
    """

    def __init__(self, conn: redis.Redis, ttl: float = settings.PAUSE_CHECK_S) -> None:
        self.conn = conn
        self.ttl = ttl
        self._value: frozenset[str] = frozenset()
        self._read_at = float("-inf")

    def get(self) -> frozenset[str]:
        now = time.monotonic()
        if now - self._read_at >= self.ttl:
            try:
                self._value = paused_queues(self.conn)
            except (redis.ConnectionError, redis.TimeoutError):
                pass
            self._read_at = now
        return self._value


# --- Inspection ---------------------------------------------------------------------------
def _epoch(raw: Any) -> float | None:
    """RQ's `enqueued_at` text as epoch seconds; anything unreadable (untrusted) is None."""
    if not raw:
        return None
    try:
        return str_to_date(raw).timestamp()
    except (TypeError, ValueError):
        return None


def oldest_enqueued(conn: redis.Redis, names: list[str]) -> dict[str, float | None]:
    """When the task at the head of each queue (the next one out, FIFO) was enqueued.

    Two pipelined round trips whatever the number of queues: LINDEX 0 of each list, then
    the `enqueued_at` field of each head job.
    """
    with conn.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.lindex(jobs.queue(conn, name).key, 0)
        heads = pipe.execute()
    found = [(name, head.decode()) for name, head in zip(names, heads) if head]
    with conn.pipeline(transaction=False) as pipe:
        for _, job_id in found:
            pipe.hget(Job.key_for(job_id), "enqueued_at")
        stamps = pipe.execute()
    out: dict[str, float | None] = {name: None for name in names}
    out.update({name: _epoch(stamp) for (name, _), stamp in zip(found, stamps)})
    return out


def queue_overview(conn: redis.Redis, depths: dict[str, int], now: float | None = None) -> list[dict[str, Any]]:
    """One entry per queue (depths from the metrics' own reading): depth, oldest task, paused."""
    now = now or time.time()
    names = list(depths)
    oldest = oldest_enqueued(conn, names)
    paused = paused_queues(conn)
    out = []
    for name in names:
        depth = int(depths[name])
        since = oldest.get(name) if depth else None
        out.append({
            "name": name, "capabilities": name[len(settings.QUEUE_PREFIX):], "depth": depth,
            "oldest_enqueued_at": utc_timestamp(since) if since else None,
            "oldest_age_s": round(max(0.0, now - since), 3) if since else None,
            "paused": name in paused,
        })
    return out


# --- Empty --------------------------------------------------------------------------------
def empty_queue(conn: redis.Redis, name: str) -> list[str]:
    """Cancel every task queued on `name`; returns their ids.

    The ids are taken and the list deleted in one MULTI, so a worker cannot take one of
    them halfway; each task is then marked canceled (retryable, like DELETE /api/tasks/<id>/).
    """
    name = check_queue(name)
    key = jobs.queue(conn, name).key
    with conn.pipeline() as pipe:
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        raw_ids, _ = pipe.execute()
    ids = [i.decode() for i in raw_ids]
    canceled = []
    for start in range(0, len(ids), 500):
        batch = ids[start:start + 500]
        for job in jobs.fetch_jobs(conn, batch):
            if job is None or job.is_canceled:
                continue
            job.cancel()
            storage.release_task_input(conn, job)   # canceled: its input may be freed
            canceled.append(job.id)
    log_event(log, "queue_emptied", queue=name, canceled=len(canceled))
    return canceled
