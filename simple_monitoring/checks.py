"""The checks behind `cli.py check`: each answers one question about the set-up.

The GPU line is informational unless --expect-gpu is given: most fleets have no GPU, and
a check that always fails there would teach operators to ignore it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from simple_monitoring.collect import Snapshot, fetch_snapshot
from stress.client import ApiClient
from stress.common import ImageSource, Pipeline, Runner

BASE_CAPABILITIES = ("io", "cpu")          # fallback when /api/filters/ cannot be read
PROBE_PIPELINE = Pipeline(({"filter": "grayscale", "params": {}},))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    counted: bool = True      # False: shown, but not a failure (GPU when not expected)

    def as_tuple(self) -> tuple[bool, str, str, bool]:
        return self.ok, self.name, self.detail, self.counted


def required_capabilities(client: ApiClient) -> list[str]:
    """The classes some filter needs, from the API's registry (so a new class is checked)."""
    resp = client.get("/api/filters/")
    data = resp.data.get("filters") if isinstance(resp.data, dict) else resp.data
    if resp.ok and isinstance(data, list):
        caps = sorted({f.get("capability") for f in data if isinstance(f, dict)} - {None})
        if caps:
            return caps
    return list(BASE_CAPABILITIES)


def check_components(client: ApiClient, snap: Snapshot, expect_gpu: bool) -> list[CheckResult]:
    """API, Redis, workers per capability, GPU — from one snapshot."""
    if not snap.api_ok:
        return [CheckResult("API reachable", False, f"{snap.url}: {snap.error}")]
    results = [CheckResult("API reachable", True, f"{snap.url}/api/health/ answered {snap.health_status}")]
    redis = snap.redis_ok
    results.append(CheckResult("Redis reachable", bool(redis),
                               "reported by /api/health/" if redis else
                               f"/api/health/ says Redis is not reachable: {snap.health}"))
    by_cap = snap.metrics.get("workers_by_capability") or {}
    for cap in required_capabilities(client):
        entry = by_cap.get(cap) or {}
        total = int(entry.get("total", 0)) if isinstance(entry, dict) else 0
        names = [w.name for w in snap.workers if cap in w.capabilities or "all" in w.capabilities]
        results.append(CheckResult(
            f"workers with capability {cap}", total > 0,
            f"{total} live ({', '.join(names)})" if total else
            f"no live worker can run {cap} tasks: start one with --capabilities {cap}"))
    gpu = by_cap.get("gpu") or {}
    gpu_total = int(gpu.get("total", 0)) if isinstance(gpu, dict) else 0
    gpu_names = [f"{w.name} ({w.device or w.backend})" for w in snap.workers if "gpu" in w.capabilities]
    results.append(CheckResult(
        "GPU workers", gpu_total > 0,
        f"{gpu_total} live: {', '.join(gpu_names)}" if gpu_total else
        "none" + ("" if expect_gpu else " (not required; --expect-gpu makes this a failure)"),
        counted=expect_gpu))
    return results


def check_end_to_end(client: ApiClient, timeout: float) -> CheckResult:
    """Submit a small sample task, wait (bounded), download the result and look at it."""
    name = "end-to-end task"
    runner = Runner(client, ImageSource(), poll_interval=0.2)
    started = time.monotonic()
    record = runner.submit(0, PROBE_PIPELINE)
    if not record.accepted:
        return CheckResult(name, False, f"submit refused ({record.status_code}): {record.reject_message}")
    runner.wait([record], timeout)
    if record.final_status != "finished":
        why = (f"not finished after {timeout:g} s (still queued or running)"
               if record.final_status == "unfinished" else
               f"{record.final_status}: {record.failure_type}: {record.failure_reason}")
        return CheckResult(name, False, f"task {record.task_id} {why}")
    result = client.get(record.extra.get("result_url") or f"/api/tasks/{record.task_id}/result/")
    if not result.ok or not result.content_type.startswith("image/") or not result.content:
        return CheckResult(name, False, f"result of {record.task_id} not downloadable: "
                                        f"{result.status} {result.content_type} {result.error_message()}")
    if result.content_type == "image/png" and not result.content.startswith(PNG_MAGIC):
        return CheckResult(name, False, f"result of {record.task_id} is not a PNG")
    took = time.monotonic() - started
    return CheckResult(name, True, f"task {record.task_id} on {record.worker or '?'} "
                                   f"({record.queue}) done in {took:.2f} s, "
                                   f"{len(result.content)} bytes {result.content_type}")


def run_checks(client: ApiClient, expect_gpu: bool = False, task_timeout: float = 30.0) -> list[CheckResult]:
    """Every check; the end-to-end task only when the API answers."""
    snap = fetch_snapshot(client, timeout=5.0)
    results = check_components(client, snap, expect_gpu)
    if snap.api_ok:
        results.append(check_end_to_end(client, task_timeout))
    return results
