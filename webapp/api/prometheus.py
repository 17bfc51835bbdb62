"""Prometheus text exposition (format 0.0.4) of the fleet, written by hand.

The format is small and a hand-written renderer avoids a dependency and a second
registry of metrics: every value comes from the same `FleetData` that GET /api/metrics/
uses. Counters and latency histograms are cumulative totals kept in Redis
(workers.stats: counted once, in the worker's fenced commit), so `rate()` and
`histogram_quantile()` work as Prometheus users expect; the sliding-window percentiles
stay in /api/metrics/. When Redis cannot be read, `pixelfleet_redis_up` is 0 and every
series read from Redis is left out — never reported as 0, which Prometheus would take
for a counter reset.
"""
from __future__ import annotations

import math

from api.metrics import FleetData, caps_label, failed_by_type, worker_capabilities
from workers.failures import FAILURE_TYPES
from workers.registry import STATES as WORKER_STATES
from workers.routing import capabilities_of_queue
from workers.settings import CAPABILITIES
from workers.stats import LATENCY_BUCKETS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label(value: str) -> str:
    """Label values escape backslash, double quote and newline, as the format requires."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    """Go-style floats: integers without a fraction, +Inf / -Inf / NaN spelled out."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if value == math.inf:
        return "+Inf"
    if value == -math.inf:
        return "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Exposition:
    """Collects metric families, each with one HELP and one TYPE line before its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: dict | None = None) -> None:
        if labels:
            inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{inner}}} {format_value(value)}")
        else:
            self.lines.append(f"{name} {format_value(value)}")

    def histogram(self, name: str, help_text: str, histogram: dict) -> None:
        """Cumulative buckets, then _sum and _count (workers.stats.read_histograms' shape)."""
        self.family(name, "histogram", help_text)
        for bound, count in zip(LATENCY_BUCKETS, histogram["buckets"]):
            self.sample(f"{name}_bucket", count, {"le": format_value(bound)})
        self.sample(f"{name}_bucket", histogram["buckets"][-1], {"le": "+Inf"})
        self.sample(f"{name}_sum", histogram["sum"])
        self.sample(f"{name}_count", histogram["count"])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(data: FleetData, redis_up: bool = True) -> str:
    """The whole exposition for one reading of the fleet."""
    out = Exposition()
    out.family("pixelfleet_redis_up", "gauge", "1 when Redis answered this scrape, else 0 "
               "(and the series read from Redis are left out).")
    out.sample("pixelfleet_redis_up", 1 if redis_up else 0)
    if redis_up:
        _fleet_series(out, data)
    _host_series(out, data)
    return out.text()


def _fleet_series(out: Exposition, data: FleetData) -> None:
    """Everything read from Redis: queues, workers, counters, histograms."""
    out.family("pixelfleet_queue_depth", "gauge", "Tasks waiting in each capability queue.")
    for queue, depth in sorted(data.queue_depths.items()):
        out.sample("pixelfleet_queue_depth", depth,
                   {"queue": queue, "capabilities": caps_label(capabilities_of_queue(queue))})

    out.family("pixelfleet_workers", "gauge",
               "Live workers (heartbeat present) by state and capability class; a worker "
               "with several classes counts once under each.")
    counts = {(state, cap): 0 for state in WORKER_STATES for cap in CAPABILITIES}
    for worker in data.workers:
        state = str(worker.get("state") or "idle")
        for cap in worker_capabilities(worker):
            counts[(state, cap)] = counts.get((state, cap), 0) + 1
    for (state, cap), count in sorted(counts.items()):
        out.sample("pixelfleet_workers", count, {"state": state, "capability": cap})

    out.family("pixelfleet_workers_live", "gauge", "Live workers in total.")
    out.sample("pixelfleet_workers_live", len(data.workers))

    for key in ("submitted", "completed"):
        name = f"pixelfleet_tasks_{key}_total"
        out.family(name, "counter", f"Tasks {key} since the Redis data was created.")
        out.sample(name, int(float(data.counters.get(key) or 0)))
    by_type = {t: 0 for t in FAILURE_TYPES}
    by_type.update(failed_by_type(data.counters))
    out.family("pixelfleet_tasks_failed_total", "counter", "Failed tasks by failure type.")
    for failure_type, count in sorted(by_type.items()):
        out.sample("pixelfleet_tasks_failed_total", count, {"failure_type": failure_type})

    if data.histograms is not None:
        out.histogram("pixelfleet_task_queue_wait_seconds",
                      "Time tasks waited in their queue, since the Redis data was created.",
                      data.histograms["queue_wait"])
        out.histogram("pixelfleet_task_processing_seconds",
                      "Time workers spent on tasks, since the Redis data was created.",
                      data.histograms["processing"])
    storage = data.storage or {}
    for key, name, help_text in (
            ("used_bytes", "pixelfleet_storage_used_bytes",
             "Bytes the storage budget measures: Redis used_memory (images in Redis) or the file store's bytes."),
            ("reserved_bytes", "pixelfleet_storage_reserved_bytes",
             "Bytes reserved for the results of queued and running tasks."),
            ("high_water_bytes", "pixelfleet_storage_high_water_bytes",
             "Above used + reserved = this, submits get 503 with Retry-After."),
            ("budget_bytes", "pixelfleet_storage_budget_bytes", "The storage budget (PIXELFLEET_STORAGE_MAX_MB)."),
            ("redis_used_bytes", "pixelfleet_redis_used_memory_bytes", "Redis used_memory."),
            ("redis_maxmemory_bytes", "pixelfleet_redis_maxmemory_bytes", "Redis maxmemory (0: unlimited).")):
        if storage.get(key) is not None:
            out.family(name, "gauge", help_text)
            out.sample(name, float(storage[key]))
    if storage:
        out.family("pixelfleet_storage_full", "gauge", "1 while new submits are refused for storage, else 0.")
        out.sample("pixelfleet_storage_full", 1 if storage.get("full") else 0)
    for key, name, help_text in (
            ("cpu_percent", "pixelfleet_worker_cpu_percent", "CPU use of each worker, percent."),
            ("rss_mb", "pixelfleet_worker_rss_mb", "Resident memory of each worker, MB.")):
        out.family(name, "gauge", help_text)
        for worker in data.workers:
            out.sample(name, float(worker.get(key) or 0), {"worker": worker.get("name", "?")})


def _host_series(out: Exposition, data: FleetData) -> None:
    """The API host's own gauges: known with or without Redis."""
    for key, name, help_text in (
            ("cpu_usage", "pixelfleet_host_cpu_percent", "CPU use of the API host, percent."),
            ("memory_usage", "pixelfleet_host_memory_percent", "Memory use of the API host, percent."),
            ("memory_available_gb", "pixelfleet_host_memory_available_gb",
             "Memory available on the API host, GB.")):
        if data.host.get(key) is not None:
            out.family(name, "gauge", help_text)
            out.sample(name, float(data.host[key]))
