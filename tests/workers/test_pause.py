"""Pausing queues with a real worker process: it skips exactly the paused ones, says so in
its heartbeat, and a worker with every queue paused waits as "paused" and still stops at once.

(Resuming and draining through real workers is shown by tests/api/test_queues.py with a
burst worker and by the dashboard's browser test with the fleet's workers.)
"""
from __future__ import annotations

import time

import pytest

from tests.fleet_helpers import WorkerSet, job_status, submit, wait_for_status, wait_for_worker, wait_until, worker_record
from workers import queues
from workers.routing import queues_for

pytestmark = pytest.mark.timeout(120)
BLUR = [{"filter": "blur", "params": {"radius": 1.0}}]          # pixelfleet:io
SHARPEN = [{"filter": "sharpen", "params": {}}]                 # pixelfleet:cpu+io


def test_worker_skips_paused_queues_and_says_so(redis_server, redis_conn):
    with WorkerSet(redis_server.url) as fleet:
        fleet.start("p-all", "io,cpu")
        wait_for_worker(redis_conn, "p-all")
        queues.pause_queue(redis_conn, "pixelfleet:io")
        wait_until(lambda: (worker_record(redis_conn, "p-all") or {}).get("paused_queues") == ["pixelfleet:io"],
                   15, what="p-all to report the paused queue")
        assert worker_record(redis_conn, "p-all")["state"] == "idle"     # it still serves its other queues

        held = [submit(redis_conn, BLUR) for _ in range(3)]
        other = submit(redis_conn, SHARPEN)
        assert wait_for_status(redis_conn, other, timeout=60) == "finished"
        time.sleep(2.5)                                                   # more than two pause checks
        assert {job_status(redis_conn, i) for i in held} == {"queued"}
        assert redis_conn.llen("rq:queue:pixelfleet:io") == 3              # in order, untouched

        for name in queues_for("io,cpu"):
            queues.pause_queue(redis_conn, name)
        wait_for_worker(redis_conn, "p-all", state="paused", timeout=15)
        started = time.monotonic()
        assert fleet.stop("p-all", timeout=15) == 0                       # a paused wait ends on SIGTERM
        assert time.monotonic() - started < 10
        assert {job_status(redis_conn, i) for i in held} == {"queued"}    # and loses nothing
