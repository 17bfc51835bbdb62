"""Fleet overhead vs bare RQ: `python -m workers.benchmark [--tasks N] [--json]`.

In one run, on a private redis-server: bare RQ SimpleWorker processes running no-op
jobs, then our workers (`python -m workers`) running tiny real tasks (64×64
brightness: stored input, validated payload, numba kernel, PNG encode, output stored,
progress and statistics written), each with 1 and 2 worker processes. The ratio
fleet/bare says how much of RQ's own throughput the fleet keeps (target ≥ 0.6).

Throughput is measured from the jobs' own timestamps: tasks are enqueued while RQ is
suspended, the workers start and warm up, then `rq resume`; the window runs from the
moment the last worker took its first task to the last end. Enqueueing, process start
and kernel warm-up are outside it. Each run times several batches and keeps the best
(this machine is shared) and the median.
Fleet workers get NUMBA_NUM_THREADS = cores / workers, as `python -m workers.fleet` gives them.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from rq import Queue
from rq.job import Job

from workers import jobs
from rq.utils import utcparse

from workers.embedded_redis import RedisServer
from workers.fleet import numba_threads_env

ROOT = Path(__file__).resolve().parent.parent
NOOP_QUEUE = "bench:noop"
TINY_STEPS = [{"filter": "brightness", "params": {"factor": 1.2}}]

# Bare RQ with the fleet's serializer (JSON, not RQ's pickle default) and the plain Job class.
_BARE_WORKER = """
import sys, redis
from rq import SimpleWorker
from workers.settings import SERIALIZER
SimpleWorker([sys.argv[2]], connection=redis.Redis.from_url(sys.argv[1]), name=sys.argv[3],
             serializer=SERIALIZER).work(logging_level="WARNING")
"""


def noop() -> None:
    """The bare-RQ job: nothing, so the number is RQ's own cost per job."""


def tiny_png() -> bytes:
    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _start_workers(kind: str, count: int, url: str, log_dir: Path) -> list[subprocess.Popen]:
    env = dict(os.environ, REDIS_URL=url, SKIP_CUDA_CHECK="1", PYTHONUNBUFFERED="1")
    procs = []
    for i in range(count):
        name = f"bench-{kind}-{i + 1}"
        if kind == "rq":
            cmd = [sys.executable, "-c", _BARE_WORKER, url, NOOP_QUEUE, name]
        else:
            cmd = [sys.executable, "-m", "workers", "--name", name, "--capabilities", "io"]
            env = dict(env, **numba_threads_env(count))
        log = open(log_dir / f"{name}.log", "ab")
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
    return procs


def _wait_ready(conn: redis.Redis, kind: str, count: int, timeout: float = 180) -> None:
    """Until `count` workers are registered with RQ and past their warm-up (suspended)."""
    from rq import Worker

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(w.get_state() == "suspended" for w in Worker.all(connection=conn)) >= count:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{count} {kind} worker(s) not ready within {timeout}s")


def _enqueue(conn: redis.Redis, kind: str, tasks: int) -> list[str]:
    if kind == "rq":
        queue = jobs.queue(conn, NOOP_QUEUE)
        enqueued = queue.enqueue_many([Queue.prepare_data("workers.benchmark.noop", result_ttl=3600)
                                       for _ in range(tasks)])
        return [job.id for job in enqueued]
    from workers.routing import enqueue_task
    from workers.storage import store_input

    digest = store_input(conn, tiny_png())
    return [enqueue_task(conn, digest, TINY_STEPS, {"source": "benchmark"}) for _ in range(tasks)]


def _steady_rate(conn: redis.Redis, ids: list[str], timeout: float = 600) -> tuple[float, int]:
    """Tasks per second once every worker was busy; and how many failed.

    Workers notice `rq resume` up to a second apart, so the window starts when the last
    worker took its first task (T0) and counts the tasks started from then on.
    """
    deadline = time.monotonic() + timeout
    while True:
        with conn.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hmget(Job.key_for(job_id), "status", "started_at", "ended_at", "worker_name")
            rows = pipe.execute()
        if all(r[0] in (b"finished", b"failed") for r in rows):
            break
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark jobs did not finish in time")
        time.sleep(0.2)
    done = [(utcparse(r[1].decode()).timestamp(), utcparse(r[2].decode()).timestamp(), r[3]) for r in rows
            if r[1] and r[2]]
    first_by_worker: dict[bytes, float] = {}
    for started, _, worker in done:
        first_by_worker[worker] = min(started, first_by_worker.get(worker, started))
    t0 = max(first_by_worker.values())
    counted = [ended for started, ended, _ in done if started >= t0]
    seconds = max(counted) - t0
    return (len(counted) / seconds if seconds > 0 else 0.0), sum(r[0] == b"failed" for r in rows)


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def measure(kind: str, workers: int, tasks: int, url: str, log_dir: Path, repeats: int) -> dict:
    """`repeats` batches of `tasks`; best and median rate kept.

    Each batch: RQ suspended, tasks enqueued, fresh workers started and warmed, then
    `rq resume` — so neither enqueueing nor start-up is inside the measured window.
    Several batches because this machine is shared: the best is the least disturbed.
    """
    from rq.suspension import resume, suspend

    conn = redis.Redis.from_url(url)
    rates, failed = [], 0
    for _ in range(repeats):
        conn.flushdb()
        suspend(conn)
        ids = _enqueue(conn, kind, tasks)
        procs = _start_workers(kind, workers, url, log_dir)
        try:
            _wait_ready(conn, kind, workers)
            resume(conn)
            rate, batch_failed = _steady_rate(conn, ids)
        finally:
            _stop(procs)
        failed += batch_failed
        rates.append(rate)
    return {"kind": "bare_rq_noop" if kind == "rq" else "fleet_tiny_task", "workers": workers,
            "tasks": tasks, "repeats": repeats, "failed": failed,
            "tasks_per_s": round(max(rates), 1), "median_tasks_per_s": round(statistics.median(rates), 1),
            "all_tasks_per_s": [round(r, 1) for r in rates]}


def run(tasks: int, repeats: int = 3, worker_counts: tuple[int, ...] = (1, 2)) -> dict:
    log_dir = Path(tempfile.mkdtemp(prefix="pixelfleet-bench-"))
    with RedisServer(data_dir=log_dir / "redis") as server:
        results = []
        for count in worker_counts:
            results.append(measure("rq", count, tasks, server.url, log_dir, repeats))
            results.append(measure("fleet", count, tasks, server.url, log_dir, repeats))
    ratios = {}
    for count in worker_counts:
        bare, ours = (next(r for r in results if r["workers"] == count and r["kind"] == k)
                      for k in ("bare_rq_noop", "fleet_tiny_task"))
        if bare["tasks_per_s"] and ours["tasks_per_s"]:
            ratios[str(count)] = round(ours["tasks_per_s"] / bare["tasks_per_s"], 3)
    return {"tasks": tasks, "repeats": repeats, "cpu_count": os.cpu_count(), "results": results, "ratio_fleet_over_bare": ratios,
            "target": 0.6, "goal": 0.8, "logs": str(log_dir)}


def render(report: dict) -> str:
    lines = [f"Pixelfleet worker benchmark: {report['tasks']} tasks per batch, best of {report['repeats']} "
             f"batches, {report['cpu_count']} CPUs", "",
             f"{'run':<18}{'workers':>8}{'best/s':>9}{'median/s':>10}{'failed':>8}"]
    for r in report["results"]:
        lines.append(f"{r['kind']:<18}{r['workers']:>8}{r['tasks_per_s']:>9}{r['median_tasks_per_s']:>10}"
                     f"{r['failed']:>8}")
    lines.append("")
    for count, ratio in report["ratio_fleet_over_bare"].items():
        verdict = "goal met" if ratio >= report["goal"] else "target met" if ratio >= report["target"] else "BELOW target"
        lines.append(f"ratio fleet/bare (best) with {count} worker(s): {ratio:.2f} ({verdict}; target 0.6, goal 0.8)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks per run (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="batches per run; the best counts (default 3)")
    parser.add_argument("--workers", default="1,2", help="worker process counts to compare (default 1,2)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.tasks < 1:
        parser.error("--tasks must be at least 1")
    try:
        counts = tuple(sorted({int(c) for c in args.workers.split(",") if c.strip()}))
    except ValueError:
        parser.error(f"--workers takes counts like 1,2, got {args.workers!r}")
    if not counts or min(counts) < 1:
        parser.error("--workers needs counts of at least 1")
    report = run(args.tasks, max(1, args.repeats), counts)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
