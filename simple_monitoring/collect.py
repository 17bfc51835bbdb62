"""API → Snapshot: one reading of the fleet over HTTP, never raising.

The dashboard runs from an operator's laptop, so it reads only the API (health, metrics,
worker heartbeats). A failed request becomes a Snapshot that says what went wrong, so the
screen can show "API down" and try again instead of dying with a traceback.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from stress.client import ApiClient

HEALTH_PATH = "/api/health/"
METRICS_PATH = "/api/metrics/"
WORKERS_PATH = "/api/workers/status/"


@dataclass
class WorkerRow:
    """One live worker as the dashboard shows it."""

    name: str
    capabilities: list[str]
    backend: str
    state: str
    current_task: str | None
    heartbeat_age_s: float | None
    done: int
    failed: int
    device: str | None = None


@dataclass
class Snapshot:
    """Everything one dashboard frame or one `metrics` print needs."""

    url: str
    taken_at: float
    api_ok: bool
    error: str | None = None                      # why the API could not be read
    health_status: int = 0                        # HTTP status of /api/health/
    health: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    workers: list[WorkerRow] = field(default_factory=list)

    # --- convenient views of the metrics body ------------------------------------------
    @property
    def redis_ok(self) -> bool | None:
        return redis_reachable(self.health) if self.health else None

    @property
    def queues(self) -> dict[str, int]:
        return {k: int(v) for k, v in (self.metrics.get("queues") or {}).items()}

    @property
    def scaling(self) -> dict:
        return self.metrics.get("scaling_recommendation") or {}

    @property
    def latency(self) -> dict:
        return self.metrics.get("latency") or {}

    @property
    def throughput(self) -> dict:
        return self.metrics.get("throughput") or {}

    @property
    def recommendations(self) -> list[dict]:
        return list(self.metrics.get("recommendations") or [])

    @property
    def tasks_ended(self) -> int | None:
        """completed + failed since the fleet's counters began (for client-side rates)."""
        tasks = self.metrics.get("tasks")
        if not isinstance(tasks, dict):
            return None
        return int(tasks.get("completed") or 0) + int(tasks.get("failed") or 0)

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "taken_at": self.taken_at, "api_ok": self.api_ok,
                "error": self.error, "health": self.health, "metrics": self.metrics,
                "workers": [w.__dict__ for w in self.workers]}


def redis_reachable(health: dict) -> bool | None:
    """Whether /api/health/ says Redis answers, whatever shape it uses for that."""
    for key in ("redis", "redis_ok", "redis_reachable"):
        if key in health:
            value = health[key]
            if isinstance(value, dict):
                for inner in ("ok", "reachable", "connected", "status"):
                    if inner in value:
                        v = value[inner]
                        return v in (True, "ok", "up", "connected") if not isinstance(v, bool) else v
                return None
            if isinstance(value, str):
                return value.lower() in ("ok", "up", "connected", "true", "reachable")
            return bool(value)
    return None


def _as_list(value: Any) -> list:
    if isinstance(value, dict):
        value = value.get("workers") or value.get("results") or []
    return value if isinstance(value, list) else []


def _caps(value: Any) -> list[str]:
    if isinstance(value, str):
        return [c for c in value.replace("+", ",").split(",") if c]
    return [str(c) for c in value or []]


def worker_rows(raw: list[dict], now: float) -> list[WorkerRow]:
    """Heartbeat records (from /api/workers/status/ or metrics.fleet) → rows, by name."""
    rows = []
    for w in raw:
        if not isinstance(w, dict):
            continue
        age = w.get("heartbeat_age_s")
        if age is None and isinstance(w.get("last_seen"), (int, float)):
            age = max(0.0, now - float(w["last_seen"]))
        rows.append(WorkerRow(
            name=str(w.get("name") or "?"), capabilities=_caps(w.get("capabilities")),
            backend=str(w.get("backend") or "?"), device=w.get("device"),
            state=str(w.get("state") or "?"), current_task=w.get("current_task"),
            heartbeat_age_s=None if age is None else float(age),
            done=int(w.get("done") or 0), failed=int(w.get("failed") or 0)))
    return sorted(rows, key=lambda r: r.name)


def fetch_snapshot(client: ApiClient, timeout: float = 3.0) -> Snapshot:
    """Read health, metrics and workers; any failure is recorded, never raised."""
    now = time.time()
    health = client.get(HEALTH_PATH, timeout=timeout)
    snap = Snapshot(url=client.url, taken_at=now, api_ok=health.status != 0,
                    health_status=health.status)
    if health.status == 0:
        snap.error = f"API unreachable: {health.error}"
        return snap
    snap.health = health.data if isinstance(health.data, dict) else {}
    metrics = client.get(METRICS_PATH, timeout=timeout)
    if metrics.ok and isinstance(metrics.data, dict):
        snap.metrics = metrics.data
    else:
        snap.error = f"/api/metrics/ answered {metrics.status}: {metrics.error_message()}"
    workers = client.get(WORKERS_PATH, timeout=timeout)
    raw = _as_list(workers.data) if workers.ok else []
    if not raw:
        raw = (snap.metrics.get("fleet") or {}).get("workers") or []
    snap.workers = worker_rows(raw, now)
    return snap


class ThroughputHistory:
    """Tasks ended per second between successive snapshots, kept client-side for a sparkline."""

    def __init__(self, keep_seconds: float = 300.0) -> None:
        self.keep_seconds = keep_seconds
        self._last: tuple[float, int] | None = None
        self.rates: deque[tuple[float, float]] = deque()

    def add(self, snap: Snapshot) -> None:
        ended = snap.tasks_ended
        if ended is None:
            return
        if self._last is not None:
            t0, n0 = self._last
            dt = snap.taken_at - t0
            if dt > 0 and ended >= n0:          # a counter reset (Redis flushed) is skipped
                self.rates.append((snap.taken_at, (ended - n0) / dt))
        self._last = (snap.taken_at, ended)
        while self.rates and snap.taken_at - self.rates[0][0] > self.keep_seconds:
            self.rates.popleft()

    def values(self) -> list[float]:
        return [r for _, r in self.rates]
