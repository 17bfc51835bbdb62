"""Metrics and scaling advice: pure functions over crafted fleets, then GET /api/metrics/
end to end over real Redis with a real worker's heartbeat and real completed tasks."""
from __future__ import annotations

import pytest

from api.metrics import (MAINTAIN, SCALE_DOWN, SCALE_UP, FleetData, build_metrics, latency,
                         recommend_per_capability, recommend_scaling, throughput,
                         workers_by_capability)
from tests.api.conftest import submit_io_task, wait_until

NOW = 1_800_000_000.0


def worker(name: str, caps, state: str = "idle", **extra) -> dict:
    return {"name": name, "capabilities": list(caps), "state": state, "cpu_percent": 10.0,
            "rss_mb": 100.0, **extra}


def completion(ago: float, wait_ms: float, processing_ms: float, status: str = "finished",
               failure_type: str | None = None) -> dict:
    return {"ended_at": NOW - ago, "status": status, "queue": "pixelfleet:io", "capabilities": ["io"],
            "wait_ms": wait_ms, "processing_ms": processing_ms, "failure_type": failure_type}


# --- recommend_scaling: every action and every urgency ---------------------------------
def test_no_worker_with_work_waiting_is_critical_scale_up():
    advice = recommend_scaling(active=0, busy=0, queue_length=9, samples=0)
    assert advice["action"] == SCALE_UP and advice["urgency"] == "critical"
    assert advice["current_workers"] == 0 and advice["recommended"] == 3   # ceil(9 / 4)
    assert "no live worker" in advice["reason"]


def test_no_worker_and_no_work_maintains():
    advice = recommend_scaling(active=0, busy=0, queue_length=0, samples=0)
    assert advice["action"] == MAINTAIN and advice["recommended"] == 0 and advice["urgency"] == "low"


def test_all_busy_with_high_backlog_is_high_urgency():
    advice = recommend_scaling(active=2, busy=2, queue_length=30, samples=50)
    assert advice["action"] == SCALE_UP and advice["urgency"] == "high"
    assert advice["recommended"] == 2 + 6          # wants ceil(30/4)=8 workers
    assert "all 2 worker(s) busy" in advice["reason"]


def test_all_busy_with_moderate_backlog_is_medium_urgency():
    advice = recommend_scaling(active=2, busy=2, queue_length=12, samples=10)
    assert advice["action"] == SCALE_UP and advice["urgency"] == "medium"
    assert advice["recommended"] == 3


def test_scale_up_step_is_bounded():
    advice = recommend_scaling(active=1, busy=1, queue_length=1000, samples=100)
    assert advice["recommended"] == 1 + 8


def test_idle_fleet_with_empty_queue_scales_down():
    advice = recommend_scaling(active=5, busy=0, queue_length=0, samples=20)
    assert advice["action"] == SCALE_DOWN and advice["urgency"] == "low"
    assert advice["recommended"] == 1 and "utilization 0%" in advice["reason"]


def test_single_idle_worker_is_kept():
    assert recommend_scaling(active=1, busy=0, queue_length=0, samples=0)["action"] == MAINTAIN


def test_busy_within_target_maintains_with_medium_urgency():
    advice = recommend_scaling(active=3, busy=3, queue_length=6, samples=10)
    assert advice["action"] == MAINTAIN and advice["urgency"] == "medium"


def test_balanced_fleet_maintains_low():
    advice = recommend_scaling(active=4, busy=2, queue_length=0, samples=10)
    assert advice["action"] == MAINTAIN and advice["urgency"] == "low"
    assert advice["recommended"] == 4


def test_confidence_grows_with_samples_and_stays_below_one():
    few = recommend_scaling(active=4, busy=2, queue_length=0, samples=0)["confidence"]
    many = recommend_scaling(active=4, busy=2, queue_length=0, samples=500)["confidence"]
    assert 0 < few < many <= 0.95


# --- per capability class ---------------------------------------------------------------
def by_caps(advice: list[dict]) -> dict[str, dict]:
    return {a["capabilities"]: a for a in advice}


def test_waiting_cpu_tasks_without_idle_cpu_worker_says_add_one():
    workers = [worker("w1", ["io"]), worker("w2", ["cpu", "io"], state="busy")]
    advice = by_caps(recommend_per_capability(workers, {"pixelfleet:cpu": 3}))
    cpu = advice["cpu"]
    assert cpu["action"] == SCALE_UP and cpu["add"] == 1 and cpu["urgency"] == "low"
    assert cpu["message"] == "3 task(s) wait for cpu, no idle cpu-capable worker: add one"
    assert advice["io"]["action"] == MAINTAIN


def test_waiting_tasks_no_capable_worker_is_critical():
    workers = [worker("w1", ["io"])]
    advice = by_caps(recommend_per_capability(workers, {"pixelfleet:cpu+gpu": 2}))
    entry = advice["cpu+gpu"]
    assert entry["action"] == SCALE_UP and entry["urgency"] == "critical"
    assert "no live worker has capabilities cpu+gpu" in entry["message"]
    assert "--capabilities cpu,gpu" in entry["message"]


def test_waiting_tasks_with_idle_capable_worker_maintain():
    workers = [worker("w3", ["all"])]          # "all" covers every class
    advice = by_caps(recommend_per_capability(workers, {"pixelfleet:cpu+io": 2}))
    assert advice["cpu+io"]["action"] == MAINTAIN and advice["cpu+io"]["available_workers"] == 1


def test_deep_class_backlog_is_high_urgency_and_stopping_workers_do_not_count():
    workers = [worker("w1", ["cpu"], state="busy"), worker("w2", ["cpu"], state="stopping")]
    entry = by_caps(recommend_per_capability(workers, {"pixelfleet:cpu": 25}))["cpu"]
    assert entry["capable_workers"] == 1 and entry["urgency"] == "high" and entry["add"] == 6


def test_workers_by_capability_counts_each_class_and_state():
    counts = workers_by_capability([worker("a", ["io"]), worker("b", ["all"], state="busy"),
                                    worker("c", ["io"], state="paused")])
    assert counts["io"] == {"total": 3, "idle": 1, "busy": 1, "warming": 0, "paused": 1, "stopping": 0}
    assert counts["gpu"]["total"] == 1 and counts["cpu"]["busy"] == 1


# --- throughput and latency ---------------------------------------------------------------
def test_throughput_windows():
    records = [completion(10, 1, 2), completion(30, 1, 2), completion(50, 1, 2, "failed", "job_failure"),
               completion(200, 1, 2)]
    out = throughput(records, NOW)
    assert out["1m"]["completed"] == 2 and out["1m"]["failed"] == 1 and out["1m"]["per_minute"] == 3.0
    assert out["5m"]["completed"] == 3 and out["5m"]["per_minute"] == 0.8


def test_latency_percentiles():
    records = [completion(5, wait_ms=i, processing_ms=10 * i) for i in range(1, 101)]
    out = latency(records, NOW)
    assert out["samples"] == 100
    assert out["queue_wait_ms"]["p50"] == pytest.approx(50.5)
    assert out["queue_wait_ms"]["p99"] == pytest.approx(99.01)
    assert out["processing_ms"]["p95"] == pytest.approx(950.5)
    assert latency([], NOW)["processing_ms"]["p50"] is None


def test_build_metrics_original_fields():
    data = FleetData(now=NOW, workers=[worker("w1", ["io"], state="busy"), worker("w2", ["cpu", "io"])],
                     queue_depths={"pixelfleet:io": 2, "pixelfleet:cpu": 1},
                     counters={"submitted": 10, "completed": 8, "failed": 2, "failed_timeout": 2},
                     completions=[completion(5, 3, 4)],
                     host={"cpu_usage": 12.5, "memory_usage": 40.0, "memory_available_gb": 3.2})
    body = build_metrics(data)
    for key in ("cpu_usage", "memory_usage", "memory_available_gb", "active_workers", "busy_workers",
                "utilization", "queue_length", "success_rate", "scaling_recommendation"):
        assert key in body, key
    assert body["active_workers"] == 2 and body["busy_workers"] == 1 and body["utilization"] == 50.0
    assert body["queue_length"] == 3 and body["success_rate"] == 80.0
    assert body["tasks"]["failed_by_type"] == {"timeout": 2}
    assert set(body["scaling_recommendation"]) >= {"current_workers", "recommended", "action", "reason",
                                                   "confidence", "urgency"}
    assert body["fleet"]["rss_mb"] == 200.0


# --- end to end: real Redis, a real worker process, GET /api/metrics/ ----------------------
@pytest.mark.timeout(120)
def test_metrics_endpoint_with_real_worker_and_tasks(api, redis_conn, start_worker):
    from api.batch import wait_for_tasks
    from workers.registry import read_workers

    ids = [submit_io_task(redis_conn) for _ in range(3)]
    queued = api.get("/api/metrics/").json()
    assert queued["queue_length"] == 3 and queued["active_workers"] == 0
    assert queued["queues"]["pixelfleet:io"] == 3
    storage = queued["storage"]
    assert storage["backend"] == "redis" and storage["pending_tasks"] == 3 and storage["reserved_bytes"] > 0
    assert storage["used_bytes"] > 0 and storage["high_water_bytes"] < storage["budget_bytes"]
    assert storage["full"] is False and storage["redis_maxmemory_policy"] == "noeviction"
    assert queued["scaling_recommendation"]["action"] == SCALE_UP
    assert queued["scaling_recommendation"]["urgency"] == "critical"
    io = by_caps(queued["recommendations"])["io"]
    assert io["queued"] == 3 and "no live worker has capabilities io" in io["message"]

    start_worker("metrics-e2e", "io", wait=False)
    statuses = wait_for_tasks(redis_conn, ids, timeout_s=60)
    assert [s["status"] for s in statuses.values()] == ["finished"] * 3, statuses
    wait_until(lambda: [w for w in read_workers(redis_conn) if w["state"] == "idle" and w["done"] >= 3],
               15, "an idle heartbeat with 3 tasks done")

    response = api.get("/api/metrics/")
    assert response.status_code == 200
    body = response.json()
    assert body["active_workers"] == 1 and body["busy_workers"] == 0 and body["utilization"] == 0.0
    assert body["queue_length"] == 0 and body["queues"]["pixelfleet:io"] == 0
    assert body["workers_by_capability"]["io"]["total"] == 1
    assert body["workers_by_capability"]["cpu"]["total"] == 0
    fleet_worker = body["fleet"]["workers"][0]
    assert fleet_worker["name"] == "metrics-e2e" and fleet_worker["rss_mb"] > 0
    assert body["tasks"] == {"submitted": 3, "completed": 3, "failed": 0, "failed_by_type": {}}
    assert body["success_rate"] == 100.0
    assert body["storage"]["pending_tasks"] == 0 and body["storage"]["reserved_bytes"] == 0
    assert body["storage"]["average_output_bytes"] > 0
    assert body["throughput"]["1m"]["completed"] == 3
    assert body["latency"]["samples"] == 3
    assert body["latency"]["queue_wait_ms"]["p50"] > 0 and body["latency"]["processing_ms"]["p99"] > 0
    assert body["scaling_recommendation"]["action"] == MAINTAIN
    assert by_caps(body["recommendations"])["io"]["capable_workers"] == 1
    assert 0 <= body["memory_usage"] <= 100 and body["memory_available_gb"] > 0


def test_metrics_endpoint_redis_down_is_503(api, redis_server, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    response = api.get("/api/metrics/")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"


def test_advice_lists_base_classes_and_only_combined_sets_with_work():
    depths = {"pixelfleet:io": 0, "pixelfleet:cpu+io": 0, "pixelfleet:cpu+gpu": 2}
    labels = [a["capabilities"] for a in recommend_per_capability([], depths)]
    assert labels == ["cpu", "gpu", "io", "cpu+gpu"]


def test_starving_class_turns_the_fleet_wide_advice_into_scale_up():
    """An idle io worker and 3 cpu tasks: fleet-wide numbers look idle, but cpu starves."""
    data = FleetData(now=NOW, workers=[worker("w1", ["io"]), worker("w2", ["io"])],
                     queue_depths={"pixelfleet:cpu": 3})
    advice = build_metrics(data)["scaling_recommendation"]
    assert advice["action"] == SCALE_UP and advice["urgency"] == "critical"
    assert advice["recommended"] == 3 and advice["current_workers"] == 2
    assert "no live worker has capabilities cpu" in advice["reason"]


def test_busy_class_without_idle_worker_raises_a_maintain():
    """One busy cpu worker, one idle io worker, 2 cpu tasks: add one cpu-capable worker."""
    data = FleetData(now=NOW, workers=[worker("w1", ["cpu"], state="busy"), worker("w2", ["io"])],
                     queue_depths={"pixelfleet:cpu": 2})
    advice = build_metrics(data)["scaling_recommendation"]
    assert advice["action"] == SCALE_UP and advice["urgency"] == "low" and advice["recommended"] == 3
    assert advice["reason"] == "2 task(s) wait for cpu, no idle cpu-capable worker: add one"


def test_fleet_wide_critical_is_kept():
    data = FleetData(now=NOW, workers=[], queue_depths={"pixelfleet:io": 2})
    advice = build_metrics(data)["scaling_recommendation"]
    assert advice["action"] == SCALE_UP and "no live worker" in advice["reason"]
    assert advice["recommended"] == 1


def test_throughput_with_exact_counts_beyond_the_sample():
    """Only the newest records are decoded on a busy fleet; totals stay exact."""
    records = [completion(5, 1, 2)] * 3 + [completion(6, 1, 2, "failed", "timeout")]
    out = throughput(records, NOW, window_counts={60: 400, 300: 2000})
    assert out["1m"] == {"window_s": 60, "completed": 300, "failed": 100, "per_minute": 400.0,
                         "per_second": 6.667, "sampled": True}
    assert out["5m"]["completed"] + out["5m"]["failed"] == 2000
    assert "sampled" not in throughput(records, NOW, window_counts={60: 4, 300: 4})["1m"]


def test_metrics_read_is_capped_on_a_busy_fleet(api, redis_conn, monkeypatch):
    """More completions in the window than PIXELFLEET_METRICS_MAX_SAMPLES: the newest are
    read, throughput still counts all of them."""
    from rq.job import Job

    from workers.stats import record_completion

    pipe = redis_conn.pipeline(transaction=False)
    for i in range(250):
        job = Job.create("workers.tasks.process_image", connection=redis_conn, origin="pixelfleet:io",
                         meta={"capabilities": ["io"]})
        record_completion(redis_conn, job, "finished" if i % 5 else "failed", wait_ms=float(i),
                          processing_ms=2.0 * i, failure_type=None if i % 5 else "job_failure", pipeline=pipe)
    pipe.execute()
    monkeypatch.setenv("PIXELFLEET_METRICS_MAX_SAMPLES", "100")
    body = api.get("/api/metrics/").json()
    assert body["latency"]["samples"] == 100 and body["latency"]["sampled_from"] == 250
    assert body["latency"]["queue_wait_ms"]["p50"] >= 150        # the newest 100 (150..249)
    one_minute = body["throughput"]["1m"]
    assert one_minute["completed"] + one_minute["failed"] == 250 and one_minute["sampled"] is True
    assert one_minute["failed"] == 50
    monkeypatch.setenv("PIXELFLEET_METRICS_MAX_SAMPLES", "1000")
    full = api.get("/api/metrics/").json()
    assert full["latency"]["samples"] == 250 and "sampled_from" not in full["latency"]
    assert full["throughput"]["1m"]["failed"] == 50 and "sampled" not in full["throughput"]["1m"]


def test_scale_down_never_drops_a_capability_class_the_fleet_serves():
    """Idle io-only and cpu-only workers: going to one worker would strand a class."""
    from api.metrics import coverage_floor, recommend_scaling

    specialists = [{"name": "w1", "capabilities": ["io"]}, {"name": "w2", "capabilities": ["cpu"]},
                   {"name": "w3", "capabilities": ["io"]}]
    assert coverage_floor(specialists) == 2
    advice = recommend_scaling(3, 0, 0, 50, coverage_floor(specialists))
    assert advice["action"] == "SCALE_DOWN" and advice["recommended"] == 2
    assert recommend_scaling(2, 0, 0, 50, coverage_floor(specialists[:2]))["action"] == "MAINTAIN"
    with_all = specialists + [{"name": "w4", "capabilities": ["all"]}]
    assert coverage_floor(with_all) == 1       # one 'all' worker covers io and cpu
    assert coverage_floor([]) == 0


def _fleet(*specs):
    return [{"name": name, "capabilities": caps, "state": state} for name, caps, state in specs]


def test_fleet_wide_scale_down_and_the_per_class_advice_agree():
    """The make-run fleet idle: the fleet-wide advice said "SCALE_DOWN 3→1" while every
    class said MAINTAIN; now the classes that would lose a worker say so, and the reason
    names the workers that could stop."""
    workers = _fleet(("worker-1", ["io"], "idle"), ("worker-2", ["cpu"], "idle"), ("worker-3", ["cpu", "io"], "idle"))
    body = build_metrics(FleetData(now=1000.0, workers=workers, queue_depths={"pixelfleet:io": 0}))
    advice = body["scaling_recommendation"]
    assert advice["action"] == SCALE_DOWN and advice["recommended"] == 1
    assert advice["stop"] == ["worker-1", "worker-2"] and "worker-1, worker-2 could stop" in advice["reason"]
    per_class = by_caps(body["recommendations"])
    assert per_class["io"]["action"] == SCALE_DOWN and per_class["io"]["remove"] == 1
    assert per_class["cpu"]["action"] == SCALE_DOWN and per_class["cpu"]["remove"] == 1
    assert per_class["gpu"]["action"] == MAINTAIN


@pytest.mark.parametrize("workers", [
    _fleet(("a", ["io"], "idle"), ("b", ["cpu"], "idle"), ("c", ["io"], "idle")),
    _fleet(("a", ["io"], "busy"), ("b", ["io"], "idle"), ("c", ["io"], "idle"), ("d", ["io"], "idle"),
           ("e", ["io"], "idle")),
    _fleet(("a", ["io"], "idle"), ("b", ["cpu"], "idle")),
    _fleet(("a", ["all"], "idle"), ("b", ["io", "cpu"], "busy"), ("c", ["cpu"], "warming")),
])
def test_scale_down_happens_fleet_wide_exactly_when_some_class_says_so(workers):
    body = build_metrics(FleetData(now=1000.0, workers=workers, queue_depths={}))
    fleet_down = body["scaling_recommendation"]["action"] == SCALE_DOWN
    assert fleet_down == any(r["action"] == SCALE_DOWN for r in body["recommendations"]), body
    if fleet_down:
        stopped = body["scaling_recommendation"]["stop"]
        assert all(w["state"] != "busy" for w in workers if w["name"] in stopped)
        assert body["scaling_recommendation"]["recommended"] == len(workers) - len(stopped)
