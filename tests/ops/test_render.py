"""Rendering is a pure function of a Snapshot: frames and the metrics layout as text.

The metrics bodies here are produced by the API's own `build_metrics` on crafted fleets,
so a change of its JSON shape shows up here rather than on an operator's screen.
"""
from __future__ import annotations

import time

import pytest

from simple_monitoring.collect import Snapshot, ThroughputHistory, redis_reachable, worker_rows
from simple_monitoring.render import (metrics_lines, render_dashboard, render_to_text, sparkline)

build = pytest.importorskip("api.metrics")


def crafted_snapshot(now: float) -> Snapshot:
    workers = [
        {"name": "worker-1", "capabilities": ["io"], "backend": "cpu", "state": "busy",
         "current_task": "task-abc", "done": 12, "failed": 1, "heartbeat_age_s": 0.7},
        {"name": "worker-2", "capabilities": ["cpu"], "backend": "cpu", "state": "idle",
         "current_task": None, "done": 3, "failed": 0, "heartbeat_age_s": 1.2},
    ]
    completions = [{"ended_at": now - i, "status": "finished" if i % 5 else "failed",
                    "wait_ms": 10.0 * i, "processing_ms": 20.0 + i} for i in range(30)]
    data = build.FleetData(now=now, workers=workers,
                           queue_depths={"pixelfleet:io": 7, "pixelfleet:cpu+io": 0,
                                         "pixelfleet:gpu": 2},
                           counters={"submitted": 50, "completed": 40, "failed": 3},
                           completions=completions,
                           host={"cpu_usage": 37.5, "memory_usage": 61.2, "memory_available_gb": 3.4},
                           storage={"backend": "redis", "used_bytes": 12 * 2**20, "budget_bytes": 30 * 2**20,
                                    "used_percent": 40.0, "high_water_bytes": 22.5 * 2**20,
                                    "reserved_bytes": 2**20, "pending_tasks": 4, "full": False})
    metrics = build.build_metrics(data)
    return Snapshot(url="http://api:8000", taken_at=now, api_ok=True, health_status=200,
                    health={"status": "ok", "redis": True}, metrics=metrics,
                    workers=worker_rows(workers, now))


def test_dashboard_frame_shows_every_section():
    snap = crafted_snapshot(time.time())
    history = ThroughputHistory()
    history.add(snap)
    later = crafted_snapshot(snap.taken_at + 2)
    later.metrics["tasks"]["completed"] += 6
    history.add(later)
    assert history.values() == [pytest.approx(3.0)]
    text = render_to_text(render_dashboard(later, history.values()), width=140)
    for needle in ("API ok", "Redis ok", "worker-1", "worker-2", "task-abc", "busy", "0.7s",
                   "io 7", "gpu 2", "(+1 empty)", "wait p50/p95 145/276 ms",
                   "processing p50/p95 34/48 ms",
                   "Advice", "no live worker has capabilities gpu", "now 3.00/s",
                   "CPU 37.5%", "Workers (cpu 1, gpu 0, io 1)", "q or Ctrl-C quits",
                   "Storage redis 12.0 MB of 30.0 MB (40.0%), mark 22.5 MB"):
        assert needle in text, needle
    narrow = render_to_text(render_dashboard(later, history.values()), width=80)
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "worker-1" in narrow and "task-abc" in narrow
    later.metrics["latency"] = {}
    assert "wait p50/p95 -" in render_to_text(render_dashboard(later), width=80)


def test_dashboard_frame_when_api_is_down_has_no_traceback():
    snap = Snapshot(url="http://api:8000", taken_at=time.time(), api_ok=False,
                    error="API unreachable: connection refused")
    text = render_to_text(render_dashboard(snap), width=80)
    assert "API DOWN" in text and "connection refused" in text and "Traceback" not in text


def test_metrics_layout_has_original_sections_and_percentiles():
    snap = crafted_snapshot(time.time())
    lines = "\n".join(metrics_lines(snap))
    m = snap.metrics
    for needle in ("System:", "CPU usage:         37.5%", "Workers:",
                   f"Active:            {m['active_workers']}", "Scaling recommendation:",
                   f"Action:            {m['scaling_recommendation']['action']}",
                   "Throughput:", "queue wait:", "p95", "Queues: pixelfleet:cpu+io=0",
                   "Storage:             redis 12.0 MB of 30.0 MB (40.0%), mark 22.5 MB, 1.0 MB reserved for 4"):
        assert needle in lines, needle
    snap.metrics["storage"]["full"] = True
    assert "FULL: new submits get 503" in "\n".join(metrics_lines(snap))


def test_sparkline_and_redis_shapes():
    assert sparkline([0, 1, 2, 4]) == "▁▃▅█"
    assert sparkline([0, 0]) == "▁▁" and sparkline([]) == ""
    assert redis_reachable({"redis": True}) is True
    assert redis_reachable({"redis": {"ok": False}}) is False
    assert redis_reachable({"redis": "ok"}) is True
    assert redis_reachable({}) is None


def test_throughput_history_skips_counter_reset_and_ages_out():
    hist = ThroughputHistory(keep_seconds=10)
    snaps = []
    for t, done in ((0, 10), (2, 14), (4, 2), (6, 6), (20, 26)):
        s = Snapshot(url="u", taken_at=1000.0 + t, api_ok=True,
                     metrics={"tasks": {"completed": done, "failed": 0}})
        hist.add(s)
        snaps.append(s)
    # 0→2: 2/s; 2→4 reset skipped; 4→6: 2/s; 6→20: 20/14 s; only the last is within 10 s
    assert hist.values() == [pytest.approx(20 / 14)]
