"""The storage budget: how much the images may take, and the high-water mark for submits.

Why reservations: above the mark the API refuses new work (503, Retry-After) while tasks
already accepted still run and write their results. So each accepted task reserves, on
its enqueue, the most its result can take (its size after the pipeline times the worst
case of its format: `output_bound`), and the projection is what is stored now plus what
is reserved. A task's end gives its reservation back (the same Lua step that releases
its input). With Redis's `maxmemory` at the budget and `noeviction`, a worker's result
write then does not meet an out-of-memory refusal, and no queue or job key is ever
evicted; the gap between the mark and the budget (25% by default) absorbs Redis's own
overhead (job hashes, buffers).

The budget is PIXELFLEET_STORAGE_MAX_MB; unset, the Redis server's own `maxmemory`
(what `make run` sets from the same variable), else a quarter of this machine's memory
(the images in Redis) or half the volume (a file store).
"""
from __future__ import annotations

import math
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import psutil
import redis
from rq import Queue
from rq.registry import StartedJobRegistry

from workers import settings, storage

MB = 2**20
UNKNOWN_OUTPUT_BYTES = 4 * MB   # reserved for a result whose input size is unknown (no bytes at hand)
RETRY_AFTER_S = 5
# Bytes per pixel a result may take at most: PNG is at worst the raw RGBA raster; JPEG and
# WebP (quality ≤ 100) stay well under 12 bits per pixel even on noise.
_BYTES_PER_PIXEL = {"png": 4.0, "jpeg": 1.5, "webp": 1.5}


class StorageFull(storage.StorageError):
    """Above the high-water mark: the submit is refused, nothing was stored."""

    code = "storage_full"
    http_status = 503
    retry_after = RETRY_AFTER_S


def default_budget_mb() -> int:
    """A quarter of this machine's memory, in MB: the embedded Redis's default maxmemory."""
    return max(64, psutil.virtual_memory().total // 4 // MB)


def embedded_maxmemory_mb() -> int:
    """What `make run` gives its own redis-server as maxmemory."""
    return settings.storage_max_mb() or default_budget_mb()


def output_size(width: int, height: int, steps: Any) -> tuple[int, int]:
    """The result's width and height after the pipeline (only `resize` changes them;
    pixelate without upscale only shrinks, so the input size stays a bound)."""
    w, h = max(1, int(width)), max(1, int(height))
    for step in steps or ():
        name = getattr(step, "name", None) or (step.get("filter") if isinstance(step, dict) else None)
        params = getattr(step, "params", None) or (step.get("params") if isinstance(step, dict) else None) or {}
        if name != "resize":
            continue
        if params.get("scale"):
            w, h = max(1, round(w * params["scale"])), max(1, round(h * params["scale"]))
        elif params.get("width") and params.get("height"):
            w, h = int(params["width"]), int(params["height"])
        elif params.get("width"):
            w, h = int(params["width"]), max(1, round(h * params["width"] / w))
        elif params.get("height"):
            w, h = max(1, round(w * params["height"] / h)), int(params["height"])
    return w, h


def output_bound(data: bytes | None, steps: Any, fmt: str) -> int:
    """Bytes to reserve for a task's result: its size after the pipeline times the worst
    case of its format; UNKNOWN_OUTPUT_BYTES when the input cannot be measured."""
    if not data:
        return UNKNOWN_OUTPUT_BYTES
    try:
        from filters.io import probe_image   # header only, no pixels decoded

        info = probe_image(data)
    except Exception:   # noqa: BLE001 - the worker will refuse it; reserve the default
        return UNKNOWN_OUTPUT_BYTES
    return bound_for_size(info.width, info.height, steps, fmt)


def bound_for_size(width: int, height: int, steps: Any, fmt: str) -> int:
    """output_bound for an input already probed (width x height)."""
    w, h = output_size(width, height, steps)
    return int(w * h * _BYTES_PER_PIXEL.get(str(fmt).lower(), 4.0)) + 4096


@lru_cache(maxsize=1)
def _pending_keys() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from workers.routing import all_queue_names

    names = all_queue_names()
    return (tuple(Queue.redis_queue_namespace_prefix + n for n in names),
            tuple(StartedJobRegistry.key_template.format(n) for n in names))


@dataclass(frozen=True)
class StorageUsage:
    """One reading: what the budget measures, against what, and whether submits stop."""

    backend: str
    location: str
    used_bytes: int            # images in a file store; Redis's used_memory for the Redis store
    budget_bytes: int
    budget_source: str         # PIXELFLEET_STORAGE_MAX_MB | redis maxmemory | machine memory | volume
    high_water_bytes: int
    pending_tasks: int         # queued or running: each will still write a result
    reserved_bytes: int        # what their results may take (workers.storage_budget.output_bound)
    average_output_bytes: int  # of the results stored so far (0: none yet)
    redis_used_bytes: int
    redis_maxmemory_bytes: int
    redis_maxmemory_policy: str
    full: bool
    reason: str | None

    @property
    def used_percent(self) -> float:
        return round(100.0 * self.used_bytes / self.budget_bytes, 1) if self.budget_bytes else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "used_percent": self.used_percent,
                "high_water_percent": round(100 * settings.storage_high_water(), 1)}


def _budget(store: Any, redis_max: int) -> tuple[int, str]:
    configured = settings.storage_max_mb()
    if configured:
        return configured * MB, "PIXELFLEET_STORAGE_MAX_MB"
    if store.in_redis:
        if redis_max:
            return redis_max, "redis maxmemory"
        return default_budget_mb() * MB, "a quarter of this machine's memory"
    try:
        return shutil.disk_usage(store.root).total // 2, "half the volume"
    except (OSError, AttributeError):
        return default_budget_mb() * MB, "a quarter of this machine's memory"


def measure(conn: redis.Redis, incoming_bytes: int = 0) -> StorageUsage:
    """Read the usage in one round trip (INFO memory, queue depths, output sizes)."""
    store = storage.current_store()
    queue_keys, started_keys = _pending_keys()
    with conn.pipeline(transaction=False) as pipe:
        pipe.info("memory")
        pipe.hmget(settings.STORAGE_STATS_KEY, ["output_bytes", "outputs", "reserved_bytes"])
        for key in queue_keys:
            pipe.llen(key)
        for key in started_keys:
            pipe.zcard(key)
        memory, (out_bytes, outputs, reserved), *depths = pipe.execute()
    redis_used = int(memory.get("used_memory", 0))
    redis_max = int(memory.get("maxmemory", 0))
    policy = str(memory.get("maxmemory_policy", "unknown"))
    budget, source = _budget(store, redis_max)
    used = redis_used if store.in_redis else int(store.used_bytes(conn) or 0)
    count = int(outputs or 0)
    average = int(int(out_bytes or 0) / count) if count else 0
    pending = sum(int(d) for d in depths)
    reserved = max(0, int(reserved or 0))
    mark = int(budget * settings.storage_high_water())
    reason = None
    if used + reserved + incoming_bytes > mark:
        reason = (f"storage is full: {used / MB:.1f} MB stored and {reserved / MB:.1f} MB reserved for the "
                  f"results of {pending} accepted task(s) reach the high-water mark of {mark / MB:.1f} MB "
                  f"({settings.storage_high_water():.0%} of a {budget / MB:.0f} MB budget, {source})")
    elif not store.in_redis and redis_max and redis_used > redis_max * settings.storage_high_water():
        reason = (f"storage is full: Redis holds {redis_used / MB:.1f} MB of its {redis_max / MB:.0f} MB "
                  f"maxmemory (queues and jobs)")
    location = store.describe().get("location", "")
    return StorageUsage(store.name, location, used, budget, source, mark, pending, reserved, average,
                        redis_used, redis_max, policy, reason is not None, reason)


# A submit far below the mark reuses this process's last measurement for a moment:
# measuring is INFO memory plus a look at every queue, per request otherwise. Only a
# caller that says what the new work reserves may reuse it, and only while that
# measurement plus everything this process accepted since (inputs and reservations) plus
# the new work stays under REUSE_BELOW of the mark; what other processes accepted
# meanwhile (at most REUSE_S worth) is absorbed by that margin and by the gap between
# the mark and the budget.
REUSE_S = 0.5
REUSE_BELOW = 0.75
_recent_lock = threading.Lock()
_recent: list[Any] = [-math.inf, None, 0]   # [measured at (monotonic), StorageUsage, bytes accepted since]


def forget_recent() -> None:
    """Measure afresh on the next check (tests that change the budget between requests)."""
    with _recent_lock:
        _recent[:] = [-math.inf, None, 0]


def _reuse(incoming_bytes: int) -> StorageUsage | None:
    """The recent measurement when the new work (`incoming_bytes`, reservations included)
    still leaves it far below the mark; None: measure."""
    with _recent_lock:
        at, usage, since = _recent
        if usage is None or time.monotonic() - at > REUSE_S:
            return None
        if usage.used_bytes + usage.reserved_bytes + since + incoming_bytes > usage.high_water_bytes * REUSE_BELOW:
            return None
        _recent[2] = since + incoming_bytes
        return usage


def check_capacity(conn: redis.Redis, incoming_bytes: int = 0, reserving_bytes: int | None = None) -> StorageUsage:
    """The usage, or StorageFull (503 + Retry-After) when new work would cross the mark.

    `reserving_bytes`: what the new tasks will reserve for their results; given, a recent
    measurement far below the mark may answer without asking Redis (REUSE_S)."""
    if reserving_bytes is not None:
        usage = _reuse(incoming_bytes + reserving_bytes)
        if usage is not None:
            return usage
    usage = measure(conn, incoming_bytes)
    if not usage.full and reserving_bytes is not None:
        with _recent_lock:
            _recent[:] = [time.monotonic(), usage, incoming_bytes + reserving_bytes]
    if usage.full:
        raise StorageFull(f"{usage.reason}. Tasks already accepted still complete and their results can be "
                          f"fetched; fetch and DELETE finished results to free space sooner, and retry in "
                          f"{RETRY_AFTER_S} s.",
                          {"used_bytes": usage.used_bytes, "reserved_bytes": usage.reserved_bytes,
                           "high_water_bytes": usage.high_water_bytes, "budget_bytes": usage.budget_bytes,
                           "retry_after_s": RETRY_AFTER_S})
    return usage
