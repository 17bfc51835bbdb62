"""Capability routing: which queue a task goes on, which queues a worker listens to.

A task needs a set of capabilities (the classes of its filters, plus `gpu` when the
request insists on one) and goes onto the queue named after that set. A worker with
capabilities C listens on every queue whose set is a subset of C, so it can only ever
take a task it can run; FIFO holds within each queue. See docs/workers.md for the
listening order and its trade-off.
"""
from __future__ import annotations

import time
import uuid
from itertools import combinations
from typing import Any, Iterable, Mapping

import redis

from filters.errors import EngineError
from filters.registry import DEVICES
from workers import jobs, settings, storage
from workers.storage_budget import output_bound

TASK_FUNCTION = "workers.tasks.process_image"   # a string: the API never imports numba
MAX_TIMEOUT = 3600                                  # s; a longer task is a mistake, not a need
# How hard a capability is to find in the fleet: the rarer, the earlier it is served.
_SCARCITY = {"gpu": 4, "cpu": 2, "io": 1}


class InvalidOptions(EngineError):
    """A task option (format, quality, device, timeout) is wrong; nothing was enqueued."""

    code = "invalid_options"
    http_status = 400


def parse_capabilities(raw: str | Iterable[str]) -> frozenset[str]:
    """`"io,cpu"`, `"all"` or an iterable of names → a validated capability set.

    "all" expands to settings.CAPABILITIES; an unknown name is an error that lists the
    known ones, so a typo in WORKER_CAPABILITIES stops the worker instead of idling it.
    """
    names = raw.replace("+", ",").split(",") if isinstance(raw, str) else list(raw)
    caps: set[str] = set()
    for name in (n.strip().lower() for n in names):
        if not name:
            continue
        if name == "all":
            caps.update(settings.CAPABILITIES)
        elif name in settings.CAPABILITIES:
            caps.add(name)
        else:
            known = ", ".join(settings.CAPABILITIES)
            raise ValueError(f"unknown capability {name!r}; known: {known}, or all")
    if not caps:
        raise ValueError("no capabilities given; use some of io, cpu, gpu, or all")
    return frozenset(caps)


def queue_name(caps: Iterable[str]) -> str:
    """The queue for a capability set: QUEUE_PREFIX + sorted names joined by '+'."""
    names = sorted(set(caps))
    if not names:
        raise ValueError("a task needs at least one capability")
    return settings.QUEUE_PREFIX + "+".join(names)


def capabilities_of_queue(name: str) -> frozenset[str]:
    """Inverse of queue_name: "pixelfleet:cpu+io" → {"cpu", "io"}."""
    if not name.startswith(settings.QUEUE_PREFIX):
        raise ValueError(f"{name!r} is not a Pixelfleet queue")
    return frozenset(name[len(settings.QUEUE_PREFIX):].split("+"))


def demand_key(caps: Iterable[str]) -> tuple[int, int, str]:
    """Sort key, most demanding first: larger sets, then rarer capabilities (gpu > cpu > io)."""
    caps = frozenset(caps)
    return (-len(caps), -sum(_SCARCITY.get(c, 0) for c in caps), "+".join(sorted(caps)))


def queues_for(caps: str | Iterable[str]) -> list[str]:
    """A worker's listening order: every non-empty subset of its capabilities.

    Most demanding first, so a task only a specialist can run is taken by the specialist
    before it spends itself on work any worker could do (see docs/workers.md).
    """
    own = parse_capabilities(caps) if isinstance(caps, str) else frozenset(caps)
    subsets = [frozenset(combo) for size in range(1, len(own) + 1) for combo in combinations(sorted(own), size)]
    return [queue_name(s) for s in sorted(subsets, key=demand_key)]


def all_queue_names() -> list[str]:
    """Every queue the fleet can have, most demanding first (for dashboards and metrics)."""
    return queues_for(settings.CAPABILITIES)


def normalise_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults filled in and every option checked; InvalidOptions names the bad one."""
    from filters.io import OUTPUT_FORMATS   # local: keeps `import workers.routing` light

    options = dict(options or {})
    fmt = str(options.get("format") or "png").lower()
    if fmt == "jpg":
        fmt = "jpeg"
    if fmt not in OUTPUT_FORMATS:
        raise InvalidOptions(f"format must be one of {', '.join(OUTPUT_FORMATS)}, got {fmt!r}")
    quality = options.get("quality", 90)
    if quality is None:
        quality = 90
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise InvalidOptions(f"quality must be an integer between 1 and 100, got {quality!r}")
    device = str(options.get("device") or "auto").lower()
    if device not in DEVICES:
        raise InvalidOptions(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    timeout = options.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)
                                or not 1 <= timeout <= MAX_TIMEOUT):
        raise InvalidOptions(f"timeout must be an integer number of seconds between 1 and {MAX_TIMEOUT}, got {timeout!r}")
    source = str(options.get("source") or "api")[:64]
    return {"format": fmt, "quality": quality, "device": device,
            "timeout": timeout or settings.TASK_TIMEOUT, "source": source}


def describe_steps(steps: list[dict[str, Any]]) -> str:
    """`blur(radius=2.0) | grayscale()` — how a task reads in `rq info` and the logs."""
    parts = []
    for step in steps:
        params = ", ".join(f"{k}={v}" for k, v in step["params"].items())
        parts.append(f"{step['filter']}({params})")
    return " | ".join(parts)


def enqueue_task(conn: redis.Redis, digest: str | None, steps: Any, options: Mapping[str, Any] | None = None,
                 data: bytes | None = None, reserve_bytes: int | None = None) -> str:
    """Validate, route and enqueue one task on its input; returns its id.

    The input is either already stored (`digest`) or stored here (`data`, with `digest`
    when known: a sample's bytes then travel only when the store lost them). Either way
    the new task takes a reference on it (workers.storage.acquire_input) before one MULTI
    writes the RQ job, the queue push, the task index and the `submitted` counter — a
    task is never indexed without being queued, or vice versa. The same MULTI reserves
    the bytes its result may take (workers.storage_budget.output_bound, or
    `reserve_bytes`) for the API's storage high-water mark. If that MULTI fails, the
    reference is given back.
    """
    from filters.registry import required_capabilities, validate_steps

    checked = validate_steps(steps)
    opts = normalise_options(options)
    caps = required_capabilities(checked, opts["device"])
    name = queue_name(caps)
    task_id = str(uuid.uuid4())
    reserve = output_bound(data, checked, opts["format"]) if reserve_bytes is None else int(reserve_bytes)
    digest = _acquire(conn, task_id, digest, data)
    plain_steps = [{"filter": s.name, "params": dict(s.params)} for s in checked]
    payload = {"digest": digest, "steps": plain_steps, "format": opts["format"],
               "quality": opts["quality"], "device": opts["device"]}
    submitted_at = time.time()
    meta = {"capabilities": sorted(caps), "submitted_at": submitted_at,
            "source": opts["source"], "device": opts["device"], "reserve_bytes": reserve}
    description = f"{describe_steps(plain_steps)} -> {opts['format']}"[:240]
    queue = jobs.queue(conn, name)
    try:
        with conn.pipeline() as pipe:
            job = queue.enqueue_call(
                TASK_FUNCTION, args=(payload,), timeout=opts["timeout"],
                result_ttl=settings.RESULT_TTL, failure_ttl=settings.FAILURE_TTL,
                description=description, meta=meta, job_id=task_id, pipeline=pipe,
            )
            pipe.zadd(settings.TASK_INDEX_KEY, {job.id: submitted_at})
            # Forget index entries older than anything RQ still remembers.
            pipe.zremrangebyscore(settings.TASK_INDEX_KEY, 0,
                                  submitted_at - max(settings.FAILURE_TTL, settings.RESULT_TTL))
            pipe.hincrby(settings.COUNTERS_KEY, "submitted", 1)
            storage.reserve_output(pipe, task_id, reserve)
            pipe.execute()
    except BaseException:
        storage.release_input(conn, digest, task_id)
        raise
    return job.id


def _acquire(conn: redis.Redis, task_id: str, digest: str | None, data: bytes | None) -> str:
    """The task's reference on its input: the stored copy if any, else `data` stored now."""
    if digest is not None and data is not None:
        try:
            return storage.acquire_input(conn, task_id, digest)
        except storage.InputMissing:
            pass
    if data is not None:
        return storage.acquire_input(conn, task_id, digest, data=data)
    try:
        return storage.acquire_input(conn, task_id, digest)
    except storage.InputMissing:
        raise storage.InputMissing(f"input image {str(digest)[:12]}… is not stored (expired, freed or never "
                                   "stored); store it before enqueueing") from None
