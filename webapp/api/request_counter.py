"""The fleet-wide count of requests served, added to Redis in batches from the event loop.

Why batched: one INCR per request was a Redis write per request — the most frequent
write the API made (every status poll) — and under `appendfsync always` (make run's
embedded Redis) every write round trip is an fsync that stalls Redis for everyone.
Requests served under the event loop are counted in this process and added with one
INCRBY at most every FLUSH_S (so /api/stats/ lags by at most that much); a sync caller
(WSGI, the test client) still adds its one at once. A flush that fails is retried with
the next one; a process that dies loses at most FLUSH_S of counts.
"""
from __future__ import annotations

import asyncio

import redis

from workers import settings

REQUESTS_KEY = settings.API_REQUESTS_KEY   # fleet-wide requests served
FLUSH_S = 0.25

_pending = 0
_scheduled = False


def count_sync() -> None:
    """One request served outside the event loop: counted at once."""
    try:
        settings.get_redis().incr(REQUESTS_KEY)
    except redis.RedisError:
        pass


def count() -> None:
    """One request served in the event loop: counted within FLUSH_S."""
    global _pending
    _pending += 1
    _schedule_flush()


def _schedule_flush() -> None:
    global _scheduled
    if not _scheduled:
        _scheduled = True
        asyncio.get_running_loop().call_later(FLUSH_S, lambda: asyncio.ensure_future(flush()))


async def flush() -> None:
    """Add what this process counted since the last flush (kept for the next one on error)."""
    global _pending, _scheduled
    taken, _pending, _scheduled = _pending, 0, False
    if not taken:
        return
    try:
        await settings.get_async_redis().incrby(REQUESTS_KEY, taken)
    except (redis.RedisError, OSError):
        _pending += taken
        _schedule_flush()
