"""End-of-task wake-ups: whoever ends a task pushes a token, `?wait=` requests wait on it (BLMOVE).

Why a list per task (a blocking list pop) and not a sleep loop or pub/sub: a waiting request costs
nothing until Redis answers it, and a token pushed before the waiter arrives is not
lost (a pub/sub message would be). The protocol, free of lost wake-ups:

- the ender (worker after RQ has persisted the final status, the reaper in the same
  MULTI as the failure, a cancel) RPUSHes the task's final status to DONE_KEY, with a
  TTL of DONE_TTL;
- a waiter reads the job's status first; only if it has not ended does it wait on the
  key (BLMOVE of the list onto itself: the token stays for every other waiter of the
  same task), then reads the status again; a stale token (the task was retried since)
  is removed.
"""
from __future__ import annotations

import asyncio
from typing import Any

import redis
from rq.job import Job

from workers import settings

ENDED = frozenset({"finished", "failed", "canceled", "stopped"})   # RQ statuses a task ends in


def done_key(task_id: str) -> str:
    return settings.DONE_KEY.format(task_id=task_id)


def push_done(conn: redis.Redis, task_id: str, status: str, pipeline: Any = None) -> None:
    """Wake every waiter of `task_id` (one RPUSH + EXPIRE, or on the caller's pipeline)."""
    pipe = pipeline if pipeline is not None else conn.pipeline(transaction=False)
    key = done_key(task_id)
    pipe.rpush(key, status)
    pipe.expire(key, settings.DONE_TTL)
    if pipeline is None:
        pipe.execute()


def forget_done(conn: redis.Redis, task_id: str, pipeline: Any = None) -> None:
    """Drop a task's token (it is queued again: a retry), so no waiter wakes on the old end."""
    (pipeline if pipeline is not None else conn).delete(done_key(task_id))


def _text(raw: bytes | str | None) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw


async def ended_status(aconn: Any, task_id: str) -> str | None:
    """The job's raw RQ status (one HGET, nothing else read); None when there is no job."""
    return _text(await aconn.hget(Job.key_for(task_id), "status"))


async def wait_until_ended(aconn: Any, task_id: str, timeout: float) -> bool:
    """Block (without a thread) until the task has ended or `timeout` s passed.

    True when it ended (or does not exist: nothing to wait for), False on timeout.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, timeout)
    key = done_key(task_id)
    while True:
        status = await ended_status(aconn, task_id)
        if status is None or status in ENDED:
            return True
        remaining = deadline - loop.time()
        if remaining < 0.01:   # BLMOVE's timeout 0 would mean "for ever"
            return False
        # BLMOVE from the list onto itself: the token wakes this waiter and stays for the
        # next one, in the same command (a BLPOP then pushed it back: one round trip more,
        # an fsync under `appendfsync always`). Redis serves every blocked waiter in turn.
        token = await aconn.blmove(key, key, remaining, "LEFT", "RIGHT")
        if token is None:
            return False
        status = await ended_status(aconn, task_id)
        if status is None or status in ENDED:
            return True
        # A stale token (an earlier end of a task retried since): dropped; keep waiting.
        await aconn.lrem(key, 1, token)
