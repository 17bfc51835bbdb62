"""Pausing a queue with real worker processes: nothing taken, nothing lost, said in the heartbeat."""
from __future__ import annotations

import time

import pytest

from tests.fleet_helpers import WorkerSet, submit, wait_for_status, wait_for_worker, wait_until, worker_record, job_status
from workers import queues

pytestmark = pytest.mark.timeout(120)
BLUR = [{"filter": "blur", "params": {"radius": 1.0}}]
SHARPEN = [{"filter": "sharpen", "params": {}}]


def test_paused_queue_is_held_and_resumed_by_live_workers(redis_server, redis_conn):
    with WorkerSet(redis_server.url) as fleet:
        fleet.start("p-io", "io")
        fleet.start("p-all", "io,cpu")
        wait_for_worker(redis_conn, "p-io")
        wait_for_worker(redis_conn, "p-all")

        queues.pause_queue(redis_conn, "pixelfleet:io")
        # The io-only worker has nothing left to take: it says "paused"; the other names the queue.
        wait_for_worker(redis_conn, "p-io", state="paused", timeout=15)
        wait_until(lambda: (worker_record(redis_conn, "p-all") or {}).get("paused_queues") == ["pixelfleet:io"],
                   15, what="p-all to report the paused queue")
        assert worker_record(redis_conn, "p-all")["state"] == "idle"

        held = [submit(redis_conn, BLUR) for _ in range(3)]
        other = submit(redis_conn, SHARPEN)                  # cpu+io: still served by p-all
        assert wait_for_status(redis_conn, other, timeout=60) == "finished"
        time.sleep(2.5)                                       # more than two pause checks
        assert {job_status(redis_conn, i) for i in held} == {"queued"}
        assert redis_conn.llen("rq:queue:pixelfleet:io") == 3

        assert fleet.stop("p-io", timeout=15) == 0            # a paused worker stops promptly
        queues.resume_queue(redis_conn, "pixelfleet:io")
        for task_id in held:
            assert wait_for_status(redis_conn, task_id, timeout=60) == "finished"
        wait_until(lambda: (worker_record(redis_conn, "p-all") or {}).get("paused_queues") == [],
                   15, what="p-all to report no paused queue")
        assert fleet.stop("p-all") == 0
