"""Start one worker: `python -m workers --name worker-1 --capabilities io`.

Also from the environment: WORKER_NAME, WORKER_CAPABILITIES (io|cpu|gpu|all, comma-
or plus-separated), REDIS_URL. Exit codes: 0 stopped on request, 2 bad configuration,
75 stopped itself to be restarted (memory ceiling).

Order matters: decide the capabilities (the GPU check never initialises CUDA here),
wait for Redis, make sure no live twin uses our name, start beating ("warming"),
warm the kernels, then enter RQ's loop.
"""
from __future__ import annotations

import os

# Before anything loads libgomp (numba's "omp" layer, filters/__init__.py): idle OpenMP
# threads sleep instead of spinning. A worker shares its host with other workers, Redis
# and the API; spinning threads then steal the cores the busy ones need. Measured here
# (2 cores, loaded): brightness on 64x64 took 665 us with the default policy, 23 us
# passive; on 1500x1500, 7.2 ms vs 1.7 ms. An operator's own value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from workers.allocator import keep_freed_memory  # noqa: E402

# Before the first task's buffers: freed ones stay in the heap (workers/allocator.py).
KEEPS_FREED_MEMORY = keep_freed_memory()

import argparse
import logging
import signal
import socket
import sys
import time

import psutil
import redis

from workers import settings, storage
from workers.logs import configure_logging, get_logger, log_event, set_context

log = get_logger("workers.main")


class _StopBeforeStart(BaseException):
    """A stop signal arrived while warming: nothing was taken, exit cleanly."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__.splitlines()[0])
    parser.add_argument("--name", default=settings.env_str("WORKER_NAME", f"{socket.gethostname()}-{os.getpid()}"))
    parser.add_argument("--capabilities", default=settings.env_str("WORKER_CAPABILITIES", "all"),
                        help="io, cpu, gpu or all; several comma- or plus-separated")
    parser.add_argument("--redis-url", default=None,
                        help="default: REDIS_URL (preferred: a command line is visible to ps) or the local "
                             "embedded server's")
    parser.add_argument("--burst", action="store_true", help="run what is queued, then exit")
    parser.add_argument("--max-jobs", type=int, default=None, help="exit after this many tasks")
    parser.add_argument("--no-warmup", action="store_true", help="skip kernel warm-up (tests, io-only)")
    parser.add_argument("--log-level", default=settings.env_str("PIXELFLEET_LOG_LEVEL", "INFO"))
    return parser.parse_args(argv)


def connect(url: str) -> redis.Redis:
    """A client for the worker's own use; waits for Redis with capped backoff, logged once."""
    # socket_timeout: a partitioned link must end in an error, not a read that hangs for
    # TCP's retransmission timeout (~15 min); above claims.BLOCK_S, the longest BLMOVE wait.
    conn = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=20, health_check_interval=10)
    delay, logged = 0.5, False
    while True:
        try:
            conn.ping()
            if logged:
                log_event(log, "redis_reachable", url=settings.redacted_url(url))
            return conn
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if not logged:
                log_event(log, "redis_unreachable", logging.WARNING, url=settings.redacted_url(url),
                          error=str(exc), action="retrying with backoff")
                logged = True
            time.sleep(delay)
            delay = min(delay * 2, 8.0)


def claim_name(conn: redis.Redis, name: str) -> None:
    """Refuse to run beside a live worker of the same name; wait out a dead one's record."""
    from workers.registry import delete_heartbeat, read_worker

    record = read_worker(conn, name)
    if record is None:
        return
    if record.get("host") == socket.gethostname() and not psutil.pid_exists(int(record.get("pid") or 0)):
        delete_heartbeat(conn, name)   # our predecessor, gone: its tasks go to the reaper
        return
    deadline = time.monotonic() + settings.HEARTBEAT_TTL + 1
    first_seen = record.get("last_seen")
    while time.monotonic() < deadline:
        time.sleep(0.5)
        record = read_worker(conn, name)
        if record is None:
            return
        if record.get("last_seen") != first_seen:
            raise SystemExit(f"another worker named {name!r} is alive (pid {record.get('pid')} on "
                             f"{record.get('host')}); choose another --name")
    raise SystemExit(f"worker name {name!r} is still registered; choose another --name")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("worker", args.log_level)
    set_context(worker=args.name)

    from workers.heartbeat import HeartbeatThread, WorkerHealth
    from workers.reaper import reap_once
    from workers.routing import parse_capabilities, queues_for
    from workers.runtime import Runtime, grant_capabilities, set_current

    try:
        requested = parse_capabilities(args.capabilities)
    except ValueError as exc:
        print(f"python -m workers: {exc}", file=sys.stderr)
        return 2
    caps, dropped = grant_capabilities(requested)
    if dropped:
        log_event(log, "capability_dropped", logging.WARNING, capability="gpu", reason=dropped)
    if not caps:
        print("python -m workers: nothing left to serve without a GPU; add io or cpu", file=sys.stderr)
        return 2
    backend, device = "cpu", None
    if "gpu" in caps:
        from filters.dispatch import gpu_device_name

        backend, device = "gpu", gpu_device_name()
    runtime = set_current(Runtime(name=args.name, capabilities=caps, backend=backend, device=device))

    try:
        storage.current_store()
    except storage.StorageMisconfigured as exc:
        print(f"python -m workers: {exc.message}", file=sys.stderr)
        return 2
    url = args.redis_url or settings.redis_url()
    conn = connect(url)
    try:
        claim_name(conn, args.name)
    except SystemExit as exc:
        print(f"python -m workers: {exc}", file=sys.stderr)
        return 2

    health = WorkerHealth(runtime=runtime)
    beat_conn = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=3)

    def housekeeping() -> None:   # fleet-wide passes, each behind its own Redis lock
        reap_once(beat_conn, by=args.name)
        storage.housekeeping(beat_conn)

    heartbeat = HeartbeatThread(beat_conn, health, after_beat=housekeeping)
    queues = queues_for(caps)

    def stop_before_start(signum, frame):
        raise _StopBeforeStart(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop_before_start)
    signal.signal(signal.SIGINT, stop_before_start)
    heartbeat.start()
    log_event(log, "starting", capabilities=sorted(caps), backend=backend, device=device,
              queues=queues, redis=settings.redacted_url(url), pid=os.getpid())
    exit_code = 0
    try:
        if not args.no_warmup:
            from workers.warmup import warm_kernels

            started = time.perf_counter()
            # A GPU worker also runs device=cpu tasks: warm both backends.
            timings = {b: warm_kernels(caps, b) for b in (("cpu", "gpu") if backend == "gpu" else ("cpu",))}
            log_event(log, "warmed", ms=round((time.perf_counter() - started) * 1000, 1),
                      backends=list(timings), filters=sum(len(t) for t in timings.values()))
        from workers.worker import PixelfleetWorker

        worker = PixelfleetWorker(queues, health=health, connection=conn, heartbeat=heartbeat)
        exit_code = worker.run(burst=args.burst, max_jobs=args.max_jobs)
        log_event(log, "stopped", reason=worker.stop_reason or ("burst done" if args.burst else "loop ended"),
                  exit_code=exit_code, done=health.done, failed=health.failed)
    except _StopBeforeStart as exc:
        log_event(log, "stopped", reason=f"signal {exc} while warming", exit_code=0)
    except SystemExit as exc:   # forced stop: the task was handed back in the worker
        exit_code = exc.code if isinstance(exc.code, int) else 0
        log_event(log, "stopped", reason="forced stop", exit_code=exit_code, done=health.done, failed=health.failed)
    finally:
        heartbeat.stop(remove=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
