"""Heartbeat registry: records written by real worker processes, and their expiry."""
from __future__ import annotations

import json
import signal
import time

from rq import Worker

from tests.fleet_helpers import (TEST_HEARTBEAT_INTERVAL, WorkerProcess, WorkerSet, wait_for_worker, wait_until,
                                 wait_worker_gone, worker_record)
from workers.registry import heartbeat_key, read_workers, write_heartbeat


def test_record_round_trip_expires_and_ignores_garbage(redis_conn):
    write_heartbeat(redis_conn, {"name": "w-x", "state": "idle", "last_seen": time.time()}, ttl=0.4)
    redis_conn.set(heartbeat_key("junk"), b"not json")
    records = read_workers(redis_conn)
    assert [r["name"] for r in records] == ["w-x"]
    assert 0 <= records[0]["heartbeat_age_s"] < 1
    time.sleep(0.6)
    assert read_workers(redis_conn) == []


def test_live_worker_reports_itself_and_leaves_on_clean_exit(redis_server, redis_conn, tmp_path):
    with WorkerSet(redis_server.url, tmp_path) as fleet:
        worker = fleet.start("hb-1", "io,cpu,gpu", "--no-warmup")
        record = wait_for_worker(redis_conn, "hb-1", "idle", timeout=60)
        assert record["pid"] == worker.pid
        assert record["capabilities"] == ["cpu", "io"]     # gpu dropped: no GPU here
        assert record["backend"] == "cpu" and record["device"] is None
        assert record["current_task"] is None and record["done"] == 0 and record["failed"] == 0
        assert record["rss_mb"] > 10 and record["started_at"] <= time.time()
        first_seen = record["last_seen"]
        # It keeps beating (interval 1 s in tests) and RQ knows it too (`rq info`).
        wait_until(lambda: (worker_record(redis_conn, "hb-1") or {}).get("last_seen", 0) > first_seen, 5,
                   what="a second beat")
        ttl_ms = redis_conn.pttl(heartbeat_key("hb-1"))
        assert 0 < ttl_ms <= 3000
        rq_workers = {w.name: w for w in Worker.all(connection=redis_conn)}
        assert "hb-1" in rq_workers
        assert set(rq_workers["hb-1"].queue_names()) == {"pixelfleet:io", "pixelfleet:cpu", "pixelfleet:cpu+io"}
        assert fleet.stop("hb-1", signal.SIGTERM, timeout=20) == 0
        assert worker_record(redis_conn, "hb-1") is None   # removed at once, not after the TTL
        assert "hb-1" not in {w.name for w in Worker.all(connection=redis_conn)}
        log = worker.log_text()
    assert "event=capability_dropped" in log and "event=stopping" in log


def test_killed_worker_leaves_registry_within_three_periods(redis_server, redis_conn, tmp_path):
    with WorkerSet(redis_server.url, tmp_path) as fleet:
        fleet.start("hb-2", "io", "--no-warmup")
        wait_for_worker(redis_conn, "hb-2", "idle", timeout=60)
        fleet.stop("hb-2", signal.SIGKILL, timeout=10)
        killed = time.monotonic()
        wait_worker_gone(redis_conn, "hb-2", timeout=10)
        # Interval 1 s in tests: TTL 3 s (three periods), plus polling slack.
        assert time.monotonic() - killed <= 3 * float(TEST_HEARTBEAT_INTERVAL) + 0.5


def test_name_of_a_live_worker_is_refused(redis_server, redis_conn, tmp_path):
    with WorkerSet(redis_server.url, tmp_path) as fleet:
        fleet.start("hb-3", "io", "--no-warmup")
        wait_for_worker(redis_conn, "hb-3", "idle", timeout=60)
        clash = WorkerProcess("hb-3", "io", redis_server.url, tmp_path, ["--no-warmup"])
        try:
            assert clash.wait(timeout=30) == 2
            assert "another worker named 'hb-3' is alive" in clash.log_text()
        finally:
            clash.kill()
        assert worker_record(redis_conn, "hb-3")["pid"] == fleet.workers["hb-3"].pid
        json.dumps(read_workers(redis_conn))   # records are plain JSON


def test_an_idle_worker_never_shows_its_last_task_as_current(redis_server, redis_conn, tmp_path):
    """Read the record as fast as Redis answers while tasks run back to back: "idle" with a
    current_task (the monitor showed idle workers still running their last task) never appears,
    and once idle the record names the last task as last_task, soon (not a whole period later)."""
    from tests.fleet_helpers import submit, wait_for_status

    with WorkerSet(redis_server.url, tmp_path) as fleet:
        fleet.start("hb-3", "io", "--no-warmup")
        wait_for_worker(redis_conn, "hb-3", "idle", timeout=60)
        task_ids = [submit(redis_conn, [{"filter": "brightness", "params": {"factor": 1.1}}]) for _ in range(6)]
        seen, deadline = [], time.monotonic() + 60
        while time.monotonic() < deadline:
            record = worker_record(redis_conn, "hb-3")
            seen.append((record["state"], record["current_task"]))
            if record["state"] == "idle" and record["done"] == len(task_ids):
                break
        assert wait_for_status(redis_conn, task_ids[-1]) == "finished"
        assert [s for s in seen if s[0] == "idle" and s[1] is not None] == []
        assert any(state == "busy" and task in task_ids for state, task in seen)
        assert record.get("last_task") == task_ids[-1], seen[-5:]
