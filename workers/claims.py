"""Claims: a popped task belongs to its worker from the pop on, where the reaper can see it.

Why: RQ pops a task (BLPOP with several queues, BLMOVE into `<queue>:intermediate`
with one) and only later writes the execution and the started-registry entry the
reaper reads. A worker killed in between took the task with it: with several queues
(BLPOP) it was simply gone; in the intermediate list it waited for RQ's maintenance,
which fails it after a minute.

Here the pop itself moves the task id into the worker's own list,
`pixelfleet:claimed:<worker>` — one Lua script over every queue of the worker in
priority order, or one BLMOVE when it has a single queue — and the MULTI that creates
the execution (PixelfleetWorker.prepare_execution) removes it again. So at every instant
a task is in a queue, in a claim list, or started under an execution. Claim lists of
workers with no heartbeat (dead, or cut off longer than the TTL) go back to the FRONT
of their queues (rescue(), from the reaper), and a worker starting under a name rescues
what its predecessor left. A rescue that races a worker which was only slow is safe:
both may start the task, and fencing (workers/fencing.py) lets only one finish it.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import redis
from rq.exceptions import DequeueTimeout, NoSuchJobError
from rq.job import Job
from rq.queue import Queue
from rq.utils import as_text

from workers import settings

# An idle worker with several queues asks again this often (one EVALSHA, ~0.1 ms in Redis).
POLL_S = 0.05
# A single-queue worker blocks in BLMOVE at most this long per call (stop signals, outages).
BLOCK_S = 5

_CLAIM = """
local mine = redis.call('LINDEX', KEYS[1], 0)
while mine do
  local origin = redis.call('HGET', ARGV[1] .. mine, 'origin')
  if origin then return {ARGV[2] .. origin, mine} end
  redis.call('LREM', KEYS[1], 1, mine)
  mine = redis.call('LINDEX', KEYS[1], 0)
end
for i = 2, #KEYS do
  local id = redis.call('LPOP', KEYS[i])
  if id then
    redis.call('RPUSH', KEYS[1], id)
    return {KEYS[i], id}
  end
end
return false
"""

_RESCUE = """
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
local moved = {}
for i = #ids, 1, -1 do
  local origin = redis.call('HGET', ARGV[1] .. ids[i], 'origin')
  if origin then
    redis.call('LPUSH', ARGV[2] .. origin, ids[i])
    table.insert(moved, ids[i])
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[3])
return moved
"""


def claim_key(worker: str) -> str:
    return settings.CLAIM_KEY.format(name=worker)


def register(conn: redis.Redis, worker: str) -> list[str]:
    """At a worker's start: give back what a predecessor under this name left claimed,
    and list the worker among those whose claims the reaper watches."""
    moved = rescue(conn, worker)
    conn.sadd(settings.CLAIMANTS_KEY, worker)
    return moved


def rescue(conn: redis.Redis, worker: str) -> list[str]:
    """Every task in `worker`'s claim list back to the front of its queue (in order);
    returns their ids. Atomic: a task is moved once, never lost in between."""
    moved = conn.register_script(_RESCUE)(
        keys=[claim_key(worker), settings.CLAIMANTS_KEY],
        args=[Job.redis_job_namespace_prefix, Queue.redis_queue_namespace_prefix, worker])
    return [as_text(m) for m in moved or []]


def claimants(conn: redis.Redis) -> set[str]:
    return {as_text(m) for m in conn.smembers(settings.CLAIMANTS_KEY)}


def forget(pipe: redis.client.Pipeline, worker: str, job_id: str) -> None:
    """The task starts (in the caller's MULTI with its execution): no longer just claimed."""
    pipe.lrem(claim_key(worker), 1, job_id)


def claim(conn: redis.Redis, worker: str, queue_keys: Sequence[str], timeout: float | None) -> tuple[str, str] | None:
    """Pop the first task of the first non-empty queue into `worker`'s claim list.

    A task already in the list comes first: it was popped but never started (the
    start failed, Redis went away in between), and it is still this worker's to run.

    `timeout` None: do not wait. Otherwise wait up to `timeout` s; DequeueTimeout after.
    """
    key = claim_key(worker)
    deadline = None if timeout is None else time.monotonic() + timeout
    script = conn.register_script(_CLAIM)
    while True:
        found = script(keys=[key, *queue_keys], args=[Job.redis_job_namespace_prefix,
                                                     Queue.redis_queue_namespace_prefix])
        if found:
            return as_text(found[0]), as_text(found[1])
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise DequeueTimeout(timeout, list(queue_keys))
        if len(queue_keys) == 1:
            job_id = conn.blmove(queue_keys[0], key, max(0.01, min(BLOCK_S, left)), "LEFT", "RIGHT")
            if job_id is not None:
                return queue_keys[0], as_text(job_id)
        else:
            time.sleep(min(POLL_S, left))


def claiming_queue_class(worker: str, base: type[Queue] = Queue) -> type[Queue]:
    """A Queue class whose dequeue_any claims for `worker` (RQ calls it as a classmethod)."""

    class ClaimingQueue(base):   # type: ignore[valid-type, misc]
        claimant = worker

        @classmethod
        def dequeue_any(cls, queues: Iterable[Queue], timeout: int | None, connection: redis.Redis,
                        job_class=None, serializer=None, death_penalty_class=None):
            keys = [q.key for q in queues]
            while True:
                found = claim(connection, cls.claimant, keys, timeout)
                if found is None:
                    return None
                queue_key, job_id = found
                try:
                    fetched = cls._fetch_dequeued_job(connection, queue_key, job_id, job_class=job_class,
                                                      serializer=serializer, death_penalty_class=death_penalty_class)
                except NoSuchJobError:
                    fetched = None
                except (redis.ConnectionError, redis.TimeoutError):
                    raise   # still claimed: the next dequeue serves it first
                except Exception:
                    connection.lrem(claim_key(cls.claimant), 1, job_id)   # as RQ: a broken job is dropped
                    raise
                if fetched is not None:
                    return fetched
                connection.lrem(claim_key(cls.claimant), 1, job_id)      # its hash is gone: nothing to run

    ClaimingQueue.__name__ = ClaimingQueue.__qualname__ = f"ClaimingQueue[{worker}]"
    return ClaimingQueue
