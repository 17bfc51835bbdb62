"""/api/queues/ (depth, oldest task, pause, resume, empty), bulk retry and metrics history.

Through DRF's client on the real Redis, with a real burst worker of our class: a paused
queue keeps its tasks from that worker, and resuming lets it drain them.
"""
from __future__ import annotations

import time

import pytest

from api.metrics import history
from tests.api.conftest import error_of
from tests.fleet_helpers import submit
from workers.routing import all_queue_names

IO = "pixelfleet:io"
BLUR = [{"filter": "blur", "params": {"radius": 1.0}}]


def queue_of(api, name: str) -> dict:
    body = api.get("/api/queues/").json()
    return next(q for q in body["queues"] if q["name"] == name)


def test_every_queue_with_depth_and_oldest_age(api, redis_conn):
    body = api.get("/api/queues/").json()
    assert [q["name"] for q in body["queues"]] == all_queue_names()
    assert all(q["depth"] == 0 and q["oldest_age_s"] is None and not q["paused"] for q in body["queues"])
    first = submit(redis_conn, BLUR)
    time.sleep(0.3)
    submit(redis_conn, BLUR)
    entry = queue_of(api, IO)
    assert entry["depth"] == 2 and entry["capabilities"] == "io"
    assert entry["oldest_age_s"] >= 0.3, entry            # the first one, not the newest
    assert entry["oldest_enqueued_at"].endswith("Z")
    assert redis_conn.lindex("rq:queue:" + IO, 0).decode() == first


def test_pause_holds_tasks_from_a_worker_and_resume_drains_them(api, redis_conn, burst_worker):
    answer = api.post("/api/queues/io/pause/")             # the label works as well as the name
    assert answer.status_code == 200 and answer.json()["changed"] is True
    assert answer.json()["queue"]["paused"] is True
    assert api.post(f"/api/queues/{IO}/pause/").json()["changed"] is False
    task_id = submit(redis_conn, BLUR)
    status = api.get(f"/api/tasks/{task_id}/").json()
    assert status["waiting_reason"] == f"queue {IO} is paused: its tasks wait until it is resumed"
    assert burst_worker() == 0                              # a real worker takes nothing from it
    assert api.get(f"/api/tasks/{task_id}/").json()["status"] == "queued"
    assert queue_of(api, IO)["depth"] == 1

    assert api.post(f"/api/queues/{IO}/resume/").json()["changed"] is True
    assert burst_worker() == 1
    assert api.get(f"/api/tasks/{task_id}/").json()["status"] == "finished"


def test_unknown_queue_is_404_naming_the_known_ones(api):
    answer = api.post("/api/queues/pixelfleet:nope/pause/")
    assert answer.status_code == 404
    error = error_of(answer)
    assert error["code"] == "unknown_queue" and "pixelfleet:cpu+io" in error["message"]


def test_empty_needs_confirmation_then_cancels_retryably(api, redis_conn, burst_worker):
    ids = [submit(redis_conn, BLUR) for _ in range(3)]
    refused = api.post(f"/api/queues/{IO}/empty/", {}, format="json")
    assert refused.status_code == 400 and error_of(refused)["code"] == "confirmation_required"
    assert queue_of(api, IO)["depth"] == 3                  # nothing lost by the refusal
    done = api.post(f"/api/queues/{IO}/empty/", {"confirm": IO}, format="json")
    assert done.status_code == 200
    assert done.json()["canceled"] == 3 and sorted(done.json()["task_ids"]) == sorted(ids)
    assert queue_of(api, IO)["depth"] == 0
    assert {api.get(f"/api/tasks/{i}/").json()["status"] for i in ids} == {"canceled"}
    from workers import storage
    from workers.status import task_input_digest
    digest = task_input_digest(redis_conn, ids[0])
    assert storage.input_holders(redis_conn, digest) == set()     # released (kept for the retry window)
    assert api.post(f"/api/tasks/{ids[0]}/retry/").status_code == 202
    assert burst_worker() == 1


def test_bulk_retry_retries_failed_tasks(api, redis_conn, burst_worker):
    bad = [{"filter": "resize", "params": {"scale": 16.0}}]     # fails in the worker: too many pixels
    from tests.fleet_helpers import png_bytes
    failed = [submit(redis_conn, bad, png_bytes(2000, 2000, smooth=True)) for _ in range(2)]
    ok = submit(redis_conn, BLUR)
    burst_worker()
    assert {api.get(f"/api/tasks/{i}/").json()["status"] for i in failed} == {"failed"}
    answer = api.post("/api/tasks/retry-failed/", {}, format="json")
    assert answer.status_code == 202
    assert answer.json()["retried"] == 2 and sorted(answer.json()["task_ids"]) == sorted(failed)
    assert {api.get(f"/api/tasks/{i}/").json()["status"] for i in failed} == {"queued"}
    assert api.get(f"/api/tasks/{ok}/").json()["status"] == "finished"
    bad_limit = api.post("/api/tasks/retry-failed/", {"limit": 0}, format="json")
    assert bad_limit.status_code == 400 and error_of(bad_limit)["details"]["field"] == "limit"


def test_actions_need_the_token(api, monkeypatch):
    monkeypatch.setenv("PIXELFLEET_API_TOKENS", "t1")
    assert api.post(f"/api/queues/{IO}/pause/").status_code == 401
    assert api.post("/api/tasks/retry-failed/").status_code == 401
    assert api.get("/api/queues/").status_code == 200       # reads stay open by default
    api.credentials(HTTP_AUTHORIZATION="Bearer t1")
    assert api.post(f"/api/queues/{IO}/pause/").status_code == 200


def test_history_buckets_count_and_percentiles():
    now = 10_000.0
    records = [{"ended_at": now - 5, "status": "finished", "wait_ms": 10.0, "processing_ms": 100.0},
               {"ended_at": now - 6, "status": "finished", "wait_ms": 30.0, "processing_ms": 300.0},
               {"ended_at": now - 40, "status": "failed", "wait_ms": 5.0, "processing_ms": 1.0},
               {"ended_at": now - 5000, "status": "finished", "wait_ms": 1.0, "processing_ms": 1.0}]
    body = history(records, now, window_s=900, bucket_s=30)
    assert body["bucket_s"] == 30 and len(body["buckets"]) == 30
    last, before = body["buckets"][-1], body["buckets"][-2]
    assert (last["completed"], last["failed"]) == (2, 0) and last["queue_wait_ms"]["p50"] == 20.0
    assert (before["completed"], before["failed"]) == (0, 1)
    assert sum(b["completed"] + b["failed"] for b in body["buckets"]) == 3     # the old one is outside
    assert body["buckets"][0]["processing_ms"]["p95"] is None


def test_history_endpoint_reads_the_completions(api, redis_conn, burst_worker):
    submit(redis_conn, BLUR)
    burst_worker()
    body = api.get("/api/metrics/history/?window=300&bucket=60").json()
    assert len(body["buckets"]) == 5 and body["buckets"][-1]["completed"] == 1
    bad = api.get("/api/metrics/history/?bucket=1")
    assert bad.status_code == 400 and "bucket" in error_of(bad)["message"]


@pytest.mark.parametrize("path", ["/api/queues/", "/api/metrics/history/"])
def test_reads_need_the_token_when_configured(api, monkeypatch, path):
    monkeypatch.setenv("PIXELFLEET_API_TOKENS", "t1")
    monkeypatch.setenv("PIXELFLEET_READ_REQUIRES_TOKEN", "1")
    assert api.get(path).status_code == 401
