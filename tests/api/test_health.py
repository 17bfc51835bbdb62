"""Health, workers and stats endpoints against the real Redis and real heartbeat records."""
from __future__ import annotations

import time

from tests.api.conftest import error_of
from workers.registry import write_heartbeat


def heartbeat(conn, name: str, caps, state: str = "idle") -> None:
    write_heartbeat(conn, {"name": name, "host": "test", "pid": 1, "capabilities": list(caps), "backend": "cpu",
                           "device": None, "state": state, "current_task": None, "done": 0, "failed": 0,
                           "cpu_percent": 1.0, "rss_mb": 50.0, "started_at": time.time(),
                           "last_seen": time.time()}, ttl=30)


def test_health_without_workers_is_degraded_not_down(api):
    response = api.get("/api/health/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded" and body["redis"]["reachable"] is True
    assert any("no live worker" in reason for reason in body["reasons"])
    assert body["cuda_available"] is False          # the CUDA simulator never counts
    assert body["version"] == "0.1.0"
    assert api.get("/api/health/?require_workers=1").status_code == 503


def test_health_counts_live_workers_per_capability(api, redis_conn):
    heartbeat(redis_conn, "w-io", ["io"])
    heartbeat(redis_conn, "w-all", ["io", "cpu"], state="busy")
    body = api.get("/api/health").json()          # the original path, no slash
    assert body["status"] == "ok" and body["reasons"] == []
    assert body["workers"]["live"] == 2
    assert body["workers"]["by_capability"] == {"io": 2, "cpu": 1, "gpu": 0}
    assert body["workers"]["by_state"] == {"idle": 1, "busy": 1}


def test_health_is_503_with_the_reason_when_redis_is_down(api, monkeypatch):
    from workers.embedded_redis import free_port
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    response = api.get("/api/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy" and "Redis is unreachable" in body["reasons"][0]
    assert error_of(api.get("/api/stats/"))["code"] == "redis_unavailable"


def test_workers_status_lists_heartbeats(api, redis_conn):
    assert api.get("/api/workers/status/").json()["count"] == 0
    heartbeat(redis_conn, "worker-1", ["io", "cpu"])
    body = api.get("/api/workers/status/").json()
    assert body["count"] == 1 and body["workers"][0]["name"] == "worker-1"
    assert body["workers"][0]["heartbeat_age_s"] is not None
    assert body["by_capability"]["cpu"] == 1


def test_stats_count_requests_fleet_wide_and_tasks(api, burst_worker):
    first = api.get("/api/stats/").json()
    assert first["tasks_submitted"] == 0 and first["uptime_s"] >= 0
    api.post("/api/tasks/", {"sample": "small", "filters": ["grayscale"]}, format="json")
    burst_worker()
    second = api.get("/api/stats/").json()
    # The stats request itself is counted once the response is made: 1 stats + 1 submit.
    assert second["requests_served"] == first["requests_served"] + 2
    assert second["tasks_submitted"] == 1 and second["tasks_completed"] == 1 and second["tasks_failed"] == 0


def test_health_says_warming_while_no_live_worker_takes_tasks(api, redis_conn):
    heartbeat(redis_conn, "w-io", ["io"], state="warming")
    heartbeat(redis_conn, "w-cpu", ["cpu"], state="warming")
    response = api.get("/api/health/")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "warming", body
    assert "2 of 2 live worker(s) warming" in body["reasons"][0]
    assert api.get("/api/health/?require_workers=1").status_code == 503
    heartbeat(redis_conn, "w-io", ["io"], state="idle")        # one is ready: the fleet is up
    body = api.get("/api/health/").json()
    assert body["status"] == "ok" and body["reasons"] == []
    assert api.get("/api/health/?require_workers=1").status_code == 200


def test_health_is_degraded_when_queued_tasks_have_no_capable_worker(api, redis_conn):
    from tests.api.conftest import png_bytes
    from workers.routing import enqueue_task
    from workers.storage import store_input

    heartbeat(redis_conn, "w-io", ["io"])
    enqueue_task(redis_conn, store_input(redis_conn, png_bytes()), [{"filter": "sharpen", "params": {}}])
    body = api.get("/api/health/").json()
    assert body["status"] == "degraded", body
    assert body["reasons"] == ["1 task(s) wait on pixelfleet:cpu and no live worker has capabilities cpu: "
                               "start one with --capabilities cpu"]
    heartbeat(redis_conn, "w-cpu", ["cpu"], state="warming")    # a capable one is coming
    assert api.get("/api/health/").json()["status"] == "ok"


def test_readiness_of_a_stopping_fleet_is_degraded():
    from workers.readiness import assess

    result = assess([{"name": "w", "state": "stopping", "capabilities": ["io"]}], {})
    assert result.status == "degraded" and "stopping" in result.reasons[0]
    result = assess([{"name": "w", "state": "warming", "capabilities": "all"},
                     {"name": "x", "state": "stopping", "capabilities": ["io"]}], {"pixelfleet:gpu": 2})
    assert result.status == "warming" and result.warming == ["w"] and result.reasons[0].startswith("no worker")
