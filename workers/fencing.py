"""Fencing: only the current execution of a task may finish it.

Why: a worker cut off from Redis (or stalled) past the heartbeat TTL is presumed dead,
its task is given back and runs again elsewhere. When the first worker comes back it
still holds a finished (or failed) result. Without a fence both results land, the
later one overwrites the winner's, and the task is counted twice.

The fence is one key per task, `pixelfleet:fence:<task_id>`:

- `<execution_id>`: that execution owns the task (set when a worker starts it, in
  the same MULTI as RQ's execution record: PixelfleetWorker.prepare_execution);
- `revoked:<execution_id>`: the reaper gave that execution's task back (revoke());
- `done:<execution_id>`: that execution finished the task (commit()).

A worker finishes a task only through commit(): WATCH the fence, check it names our
execution, then one MULTI with RQ's status/result writes, the task's own deferred
writes (output, completion statistics — defer()) and the fence set to `done:…`.
Anything else is discarded and logged `event=fenced`. Revocation is one Lua script
(check-and-set), so a reaper and a finishing worker can never both win: whichever
changes the fence first decides, the other sees it changed.

Writes that must happen exactly once when a task ends (counters, refcount releases,
"ended" notifications) belong in a deferred write (defer()), never before it.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

import redis
from rq.job import Job, JobStatus

from workers import settings
from workers.logs import get_logger, log_event

log = get_logger("workers.fencing")

Writes = Callable[[redis.client.Pipeline], None]
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)
COMMITTED, ALREADY, FENCED = "committed", "already_committed", "fenced"
# How long a finished worker keeps trying to record its result while Redis is away.
COMMIT_PATIENCE_S = settings.env_float("PIXELFLEET_COMMIT_PATIENCE_S", 600.0)

_ATTR_EXECUTION = "_pixelfleet_execution_id"
_ATTR_DEFERRED = "_pixelfleet_deferred"
_ATTR_REPLIES = "_pixelfleet_commit_replies"


class Superseded(Exception):
    """This execution no longer owns its task (given back, or finished elsewhere)."""


def fence_key(task_id: str) -> str:
    return settings.FENCE_KEY.format(task_id=task_id)


# --- the execution's side ------------------------------------------------------------
def bind(job: Job, execution_id: str) -> None:
    """Mark `job` (the object the task code sees) as run by `execution_id` under fencing."""
    setattr(job, _ATTR_EXECUTION, execution_id)
    setattr(job, _ATTR_DEFERRED, [])


def execution_of(job: Job) -> str | None:
    return getattr(job, _ATTR_EXECUTION, None)


def take(pipe: redis.client.Pipeline, task_id: str, execution_id: str) -> None:
    """Make `execution_id` the task's owner (in the caller's MULTI that creates it)."""
    pipe.set(fence_key(task_id), execution_id, ex=settings.FENCE_TTL)


def defer(job: Job, status: str, writes: Writes) -> None:
    """Run `writes` inside the fenced commit that ends the task with `status`
    ("finished" or "failed"); at once when the job runs outside a fencing worker
    (a plain `rq worker`), so the writes are never lost."""
    deferred = getattr(job, _ATTR_DEFERRED, None)
    if execution_of(job) is None or deferred is None:
        with job.connection.pipeline() as pipe:
            writes(pipe)
            pipe.execute()
        return
    deferred.append((status, writes))


def commit_replies(job: Job) -> list | None:
    """The replies of the MULTI that committed the task (None unless this process just did)."""
    return getattr(job, _ATTR_REPLIES, None)


def discard_deferred(job: Job) -> None:
    if getattr(job, _ATTR_DEFERRED, None) is not None:
        setattr(job, _ATTR_DEFERRED, [])


_SET_IF_OWNER = """
local fence = redis.call('GET', KEYS[1])
if fence ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""


def save_meta(job: Job, pipe: redis.client.Pipeline | None = None) -> None:
    """job.save_meta(), only while this execution owns the task; Superseded otherwise.

    Outside a fencing worker it is the plain HSET. With `pipe` the check joins the
    caller's pipeline; the caller then passes the script's reply to check_saved().
    """
    execution = execution_of(job)
    target = pipe if pipe is not None else job.connection
    if execution is None:
        target.hset(job.key, "meta", job.serializer.dumps(job.meta))
        return
    keys_and_args = (fence_key(job.id), job.key, execution, "meta", job.serializer.dumps(job.meta))
    if pipe is not None:
        # EVAL, not a registered script: redis-py checks a pipeline's scripts with SCRIPT
        # EXISTS first, a round trip of its own on every task (Redis caches EVAL's script).
        pipe.eval(_SET_IF_OWNER, 2, *keys_and_args)
        return
    check_saved(job, _script(job.connection, _SET_IF_OWNER)(keys=list(keys_and_args[:2]),
                                                           args=list(keys_and_args[2:])))


def check_saved(job: Job, result: object) -> None:
    """Raise Superseded when a fenced save_meta() found another owner."""
    if execution_of(job) is not None and result == 0:
        raise Superseded(f"task {job.id}: execution {execution_of(job)} no longer owns it "
                         f"(fence: {current_fence(job.connection, job.id)})")


def current_fence(conn: redis.Redis, task_id: str) -> str | None:
    try:
        raw = conn.get(fence_key(task_id))
    except REDIS_ERRORS:
        return "?"
    return raw.decode() if raw is not None else None


def commit(conn: redis.Redis, job: Job, execution_id: str, status: str, writes: Writes,
           worker: str | None = None) -> str:
    """End the task as `status` with `writes` (+ the deferred ones for `status`), atomically,
    if `execution_id` still owns it. Returns COMMITTED, ALREADY (a retry after a lost
    reply) or FENCED. Waits for Redis (up to COMMIT_PATIENCE_S) rather than lose a result.
    """
    key = fence_key(job.id)
    deferred = [w for s, w in getattr(job, _ATTR_DEFERRED, None) or () if s == status]
    delay, waited_since = 0.2, None
    while True:
        try:
            outcome = _commit_once(conn, job, key, execution_id, writes, deferred)
            if waited_since is not None:
                log_event(log, "commit_after_outage", worker=worker, task=job.id, outcome=outcome,
                          waited_s=round(time.monotonic() - waited_since, 1))
            discard_deferred(job)
            return outcome
        except REDIS_ERRORS as exc:
            if waited_since is None:
                waited_since = time.monotonic()
                log_event(log, "commit_waiting_for_redis", logging.WARNING, worker=worker, task=job.id,
                          status=status, error=str(exc))
            elif time.monotonic() - waited_since > COMMIT_PATIENCE_S:
                discard_deferred(job)
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


def _commit_once(conn: redis.Redis, job: Job, key: str, execution_id: str, writes: Writes,
                 deferred: list[Writes]) -> str:
    with conn.pipeline() as pipe:
        while True:
            try:
                pipe.watch(key)
                raw = pipe.get(key)
                fence = raw.decode() if raw is not None else None
                if fence == f"done:{execution_id}":
                    return ALREADY
                if fence != execution_id:
                    if fence is not None:
                        return FENCED
                    # No fence at all: Redis lost it (a crash inside fsync's window) or it
                    # expired. Ours only if the task still counts as started; the WATCH
                    # makes a reaper's revocation in between win instead.
                    pipe.watch(key, job.key)
                    if (pipe.hget(job.key, "status") or b"").decode() != JobStatus.STARTED.value:
                        return FENCED
                pipe.multi()
                writes(pipe)
                for write in deferred:
                    write(pipe)
                pipe.set(key, f"done:{execution_id}", ex=settings.FENCE_TTL)
                setattr(job, _ATTR_REPLIES, pipe.execute())
                return COMMITTED
            except redis.WatchError:
                continue


# --- the reaper's side ------------------------------------------------------------------
_REVOKE = """
local fence = redis.call('GET', KEYS[1])
if fence == ARGV[1] or not fence then
  redis.call('SET', KEYS[1], 'revoked:' .. ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
"""


def revoke(conn: redis.Redis, task_id: str, execution_id: str) -> bool:
    """Take the task away from `execution_id` (it is lost); False when that execution no
    longer owns it (it finished, or another pass already gave it back)."""
    return bool(_script(conn, _REVOKE)(keys=[fence_key(task_id)], args=[execution_id, settings.FENCE_TTL]))


def _script(conn: redis.Redis, source: str):
    """A registered script (EVALSHA, loaded on first use; pipelines load it themselves)."""
    return conn.register_script(source)
