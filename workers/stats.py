"""Completion statistics: what /api/metrics/, /metrics, the dashboard and stress read.

Why a separate record from RQ's registries: RQ keeps jobs, not measurements. One small
JSON record per finished or failed task, in a zset scored by end time and trimmed to
COMPLETIONS_WINDOW, gives throughput and latency percentiles with one ZRANGEBYSCORE;
COUNTERS_KEY (a hash) keeps the running totals for ever, and HISTOGRAM_KEY hashes the
latency histograms (bucket counts, sum, count) for ever too: Prometheus wants
cumulative series that never go down, the window is for percentiles.
Written only in a worker's fenced commit (workers/fencing.py): counted exactly once.
"""
from __future__ import annotations

import json
import time
from typing import Any, Iterable

import redis
from rq.job import Job

from workers import settings

COUNTER_NAMES = ("submitted", "completed", "failed")
# Latency histograms kept for ever (cumulative, like the counters), for Prometheus:
# bucket upper bounds in seconds, from a tiny in-memory filter to the task time limit.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                   60.0, 120.0)
HISTOGRAMS = ("queue_wait", "processing")   # of wait_ms and processing_ms


def bucket_label(seconds: float) -> str:
    """The field of the one bucket `seconds` falls in: its upper bound, or "+Inf"."""
    for bound in LATENCY_BUCKETS:
        if seconds <= bound:
            return repr(bound)
    return "+Inf"


def histogram_of(values_s: Iterable[float]) -> dict[str, Any]:
    """{"buckets": cumulative counts per bound then +Inf, "sum", "count"} of `values_s`:
    the shape read_histograms() returns."""
    values = list(values_s)
    buckets = [sum(1 for v in values if v <= bound) for bound in LATENCY_BUCKETS] + [len(values)]
    return {"buckets": buckets, "sum": round(sum(values), 6), "count": len(values)}


def read_histograms(conn: redis.Redis) -> dict[str, dict[str, Any]]:
    """Every latency histogram as histogram_of() shapes it, from the counts in Redis."""
    with conn.pipeline(transaction=False) as pipe:
        for name in HISTOGRAMS:
            pipe.hgetall(settings.HISTOGRAM_KEY.format(name=name))
        raws = pipe.execute()
    result = {}
    for name, raw in zip(HISTOGRAMS, raws):
        fields = {k.decode(): v for k, v in raw.items()}
        running, buckets = 0, []
        for label in [repr(b) for b in LATENCY_BUCKETS] + ["+Inf"]:
            running += int(fields.get(label, 0))
            buckets.append(running)
        result[name] = {"buckets": buckets, "sum": round(float(fields.get("sum", 0)), 6),
                        "count": int(fields.get("count", 0))}
    return result


def completion_record(job: Job, status: str, wait_ms: float | None, processing_ms: float | None,
                      failure_type: str | None = None, ended_at: float | None = None) -> dict[str, Any]:
    """The record stored per task: small, and unique per task and end time."""
    caps = job.meta.get("capabilities") or []
    return {
        "task_id": job.id,
        "ended_at": round(ended_at or time.time(), 6),
        "status": status,
        "queue": job.origin,
        "capabilities": list(caps),
        "worker": job.meta.get("worker") or job.worker_name,
        "wait_ms": None if wait_ms is None else round(wait_ms, 3),
        "processing_ms": None if processing_ms is None else round(processing_ms, 3),
        "failure_type": failure_type,
    }


def record_completion(conn: redis.Redis, job: Job, status: str, wait_ms: float | None,
                      processing_ms: float | None, failure_type: str | None = None,
                      pipeline: redis.client.Pipeline | None = None) -> dict[str, Any]:
    """Add one completion record and bump the counters; returns the record.

    `status` is "finished" or "failed". With `pipeline` the writes join the caller's
    round trip (the task stores its output in the same one).
    """
    record = completion_record(job, status, wait_ms, processing_ms, failure_type)
    pipe = pipeline if pipeline is not None else conn.pipeline(transaction=False)
    pipe.zadd(settings.COMPLETIONS_KEY, {json.dumps(record, separators=(",", ":")): record["ended_at"]})
    pipe.zremrangebyscore(settings.COMPLETIONS_KEY, 0, record["ended_at"] - settings.COMPLETIONS_WINDOW)
    pipe.hincrby(settings.COUNTERS_KEY, "completed" if status == "finished" else "failed", 1)
    if failure_type:
        pipe.hincrby(settings.COUNTERS_KEY, f"failed_{failure_type}", 1)
    for name, ms in zip(HISTOGRAMS, (wait_ms, processing_ms)):
        if ms is not None:
            key = settings.HISTOGRAM_KEY.format(name=name)
            pipe.hincrby(key, bucket_label(ms / 1000), 1)
            pipe.hincrbyfloat(key, "sum", round(ms / 1000, 6))
            pipe.hincrby(key, "count", 1)
    if pipeline is None:
        pipe.execute()
    return record


def counters(conn: redis.Redis) -> dict[str, int]:
    """Running totals: submitted, completed, failed (0 when never counted), and
    failed_<failure_type> per type seen. A field that is not an integer (written by
    something else) is skipped: Redis data is untrusted input."""
    raw = conn.hgetall(settings.COUNTERS_KEY)
    totals = {name: 0 for name in COUNTER_NAMES}
    for key, value in raw.items():
        try:
            totals[key.decode()] = int(value)
        except (UnicodeDecodeError, ValueError):
            continue
    return totals


_RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "task_id": (str,), "status": (str,), "ended_at": (int, float), "queue": (str,), "capabilities": (list,),
    "worker": (str,), "wait_ms": (int, float), "processing_ms": (int, float), "failure_type": (str,),
}


def parse_completion(member: bytes | str) -> dict[str, Any] | None:
    """One completion record as completion_record wrote it, or None for anything else
    (garbage, a pickle, a field of the wrong type): never raises, never unpickles."""
    try:
        record = json.loads(member)
    except (TypeError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("status"), str):
        return None
    if not isinstance(record.get("ended_at"), (int, float)) or isinstance(record.get("ended_at"), bool):
        return None
    for key, types in _RECORD_TYPES.items():
        value = record.get(key)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            record[key] = None
    return record


def parse_completions(members: Iterable[bytes | str]) -> list[dict[str, Any]]:
    """parse_completion over many, the unreadable ones left out."""
    return [r for r in map(parse_completion, members) if r is not None]


def recent_completions(conn: redis.Redis, seconds: float) -> list[dict[str, Any]]:
    """Completion records of the last `seconds` (at most COMPLETIONS_WINDOW), oldest first."""
    since = time.time() - min(seconds, settings.COMPLETIONS_WINDOW)
    return parse_completions(conn.zrangebyscore(settings.COMPLETIONS_KEY, since, "+inf"))


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0–100) by linear interpolation; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(records: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Throughput and latency over `records` spanning `seconds`: what /api/metrics/ shows.

    Latency is wait + processing of finished tasks, in ms (p50, p95, p99, max).
    """
    finished = [r for r in records if r.get("status") == "finished"]
    latencies = [(r.get("wait_ms") or 0) + (r.get("processing_ms") or 0) for r in finished]
    waits = [r["wait_ms"] for r in finished if r.get("wait_ms") is not None]
    processing = [r["processing_ms"] for r in finished if r.get("processing_ms") is not None]

    def dist(values: list[float]) -> dict[str, float | None]:
        return {"p50": percentile(values, 50), "p95": percentile(values, 95),
                "p99": percentile(values, 99), "max": max(values) if values else None}

    failed = len(records) - len(finished)
    return {
        "window_s": seconds,
        "completed": len(finished),
        "failed": failed,
        "throughput_per_s": round(len(finished) / seconds, 3) if seconds > 0 else None,
        "latency_ms": dist(latencies),
        "queue_wait_ms": dist(waits),
        "processing_ms": dist(processing),
    }


def completion_summary(conn: redis.Redis, seconds: float = 60.0) -> dict[str, Any]:
    """summarize(recent_completions(conn, seconds), seconds) in one call."""
    seconds = min(seconds, settings.COMPLETIONS_WINDOW)
    return summarize(recent_completions(conn, seconds), seconds)
