"""Start, watch and stop real worker subprocesses in tests (workers, ops and API tests).

Why subprocesses: heartbeats, signals, SIGKILL recovery and restarts only mean
something for a real process. Every worker started here runs in its own session (so
a test's Ctrl-C or a stray signal does not reach it) and is killed at teardown if a
test forgot it, so no test leaves a process behind.

Typical use::

    with WorkerSet(redis_server.url) as fleet:
        w = fleet.start("w1", "io,cpu")
        wait_for_worker(redis_conn, "w1", state="idle")
        ...
        assert fleet.stop("w1") == 0
"""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import redis
from rq.job import Job, JobStatus

ROOT = Path(__file__).resolve().parent.parent
# Short beats make dead workers visible quickly in tests (TTL = 3 beats).
TEST_HEARTBEAT_INTERVAL = "1.0"


# The helpers below that tests enqueue as tasks: a worker runs them only when its own
# environment names them (workers.jobs.allowed_functions); the fleet never does.
TEST_TASKS = ("tests.fleet_helpers.die_now", "tests.fleet_helpers.sleep_task",
              "tests.fleet_helpers.process_then_linger", "tests.fleet_helpers.touch_redis_after")


def worker_env(redis_url: str, **extra: str) -> dict[str, str]:
    """Environment for a worker subprocess: our Redis, no CUDA probing, fast beats."""
    env = dict(os.environ)
    env.update({"REDIS_URL": redis_url, "SKIP_CUDA_CHECK": "1", "PYTHONUNBUFFERED": "1",
                "PIXELFLEET_HEARTBEAT_INTERVAL": TEST_HEARTBEAT_INTERVAL,
                # The poison and sleep helpers below: a worker runs only the fleet's task
                # function unless its own environment names "tests.*" extras.
                "PIXELFLEET_TEST_TASK_FUNCTIONS": ",".join(TEST_TASKS)})
    env.update(extra)
    return env


class WorkerProcess:
    """One `python -m workers` subprocess with its log captured to a file."""

    def __init__(self, name: str, capabilities: str, redis_url: str, log_dir: Path,
                 args: Iterable[str] = (), env: dict[str, str] | None = None,
                 wrap: Iterable[str] = ()) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.{int(time.time() * 1000)}.log"
        self._log = open(self.log_path, "wb")
        # `wrap`: a command that runs the worker elsewhere and execs it (`ip netns exec NS`).
        cmd = [*wrap, sys.executable, "-m", "workers", "--name", name, "--capabilities", capabilities, *args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=worker_env(redis_url, **(env or {})),
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


class WorkerSet:
    """Workers started by one test; all killed (SIGKILL) on exit if still running."""

    def __init__(self, redis_url: str, log_dir: Path | None = None) -> None:
        self.redis_url = redis_url
        self.log_dir = Path(log_dir or ROOT / "var" / "test-logs")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.workers: dict[str, WorkerProcess] = {}

    def start(self, name: str, capabilities: str = "io,cpu", *args: str, wrap: Iterable[str] = (),
              **env: str) -> WorkerProcess:
        worker = WorkerProcess(name, capabilities, self.redis_url, self.log_dir, args, env, wrap)
        self.workers[name] = worker
        return worker

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send `sig` and wait for the exit; returns the exit code."""
        worker = self.workers[name]
        worker.signal(sig)
        return worker.wait(timeout)

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{w.log_text()}" for n, w in self.workers.items())

    def __enter__(self) -> "WorkerSet":
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers.values():
            worker.kill()


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1,
               what: str = "condition") -> Any:
    """Poll until `predicate()` is truthy; returns its value or raises AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def worker_record(conn: redis.Redis, name: str) -> dict[str, Any] | None:
    from workers.registry import read_workers

    return next((r for r in read_workers(conn) if r["name"] == name), None)


def wait_for_worker(conn: redis.Redis, name: str, state: str | None = "idle", timeout: float = 60) -> dict:
    """The worker's heartbeat record once it is registered (and in `state`, if given)."""
    def ready() -> dict | None:
        record = worker_record(conn, name)
        return record if record and (state is None or record["state"] == state) else None
    return wait_until(ready, timeout, what=f"worker {name} in state {state}")


def wait_worker_gone(conn: redis.Redis, name: str, timeout: float = 15) -> None:
    wait_until(lambda: worker_record(conn, name) is None, timeout, what=f"worker {name} to leave the registry")


def job_status(conn: redis.Redis, job_id: str) -> str | None:
    raw = conn.hget(Job.key_for(job_id), "status")
    return raw.decode() if raw else None


def wait_for_status(conn: redis.Redis, job_id: str, statuses: Iterable[str] = ("finished", "failed"),
                    timeout: float = 60) -> str:
    wanted = set(statuses)
    return wait_until(lambda: (s := job_status(conn, job_id)) in wanted and s, timeout, interval=0.05,
                      what=f"task {job_id} to reach {sorted(wanted)}")


def png_bytes(width: int, height: int, seed: int = 0, smooth: bool = False) -> bytes:
    """A deterministic RGB PNG: noise, or with `smooth` a gradient (compresses ~100x, so a
    large image for a slow task is cheap to upload; convolution costs the same)."""
    import numpy as np
    from PIL import Image

    if smooth:
        y, x = np.indices((height, width))
        pixels = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                           (x + y) * 255 // max(width + height - 2, 1)], axis=-1).astype(np.uint8)
    else:
        pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def submit(conn: redis.Redis, steps: list[dict], image: bytes | None = None, **options: Any) -> str:
    """Store an image and enqueue a real task through W-core's enqueue_task; returns its id."""
    from workers.routing import enqueue_task
    from workers.storage import store_input

    digest = store_input(conn, image if image is not None else png_bytes(64, 64))
    return enqueue_task(conn, digest, steps, {"source": "test", **options})


# A slow real task: wide blurs on a large image, so a test can signal or kill the
# worker mid-task. An io task, so any worker can run it. How many steps and how large is
# calibrated once per session on this machine (kernel speed varies tenfold between a
# loaded 2-core box and a quiet many-core one), in a subprocess configured like a worker.
SLOW_STEP = {"filter": "blur", "params": {"radius": 50.0}}
SLOW_QUEUE = "pixelfleet:io"
STARTED = JobStatus.STARTED.value
_CALIBRATION = """
import os, sys, time
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import numpy as np
from filters.pipeline import run_pipeline
from filters.registry import validate_steps
steps = validate_steps([{"filter": "blur", "params": {"radius": 50.0}}])
image = np.random.default_rng(0).integers(0, 256, (1500, 1500, 3), dtype=np.uint8)
run_pipeline(image[:64, :64].copy(), steps, backend="cpu")
times = []
for _ in range(3):
    started = time.perf_counter()
    run_pipeline(image, steps, backend="cpu")
    times.append(time.perf_counter() - started)
print(sorted(times)[1])
"""
_step_seconds: float | None = None


def slow_step_seconds() -> float:
    """Seconds one SLOW_STEP takes on 1500x1500 in a worker-like process (cached)."""
    global _step_seconds
    if _step_seconds is None:
        out = subprocess.run([sys.executable, "-c", _CALIBRATION], cwd=ROOT, capture_output=True, text=True,
                             env=dict(os.environ, NUMBA_NUM_THREADS=os.environ.get("NUMBA_NUM_THREADS", "")
                                      or str(os.cpu_count() or 1)), timeout=120, check=True)
        _step_seconds = max(float(out.stdout.strip().splitlines()[-1]), 0.005)
    return _step_seconds


def slow_task_plan(seconds: float) -> tuple[int, int]:
    """(steps, image side) for a task of about `seconds` (at most 32 steps, side ≤ 4000)."""
    per_step = slow_step_seconds()
    steps = min(32, max(4, round(seconds / per_step)))
    scale = max(1.0, seconds / (steps * per_step))
    side = min(4000, int(1500 * scale ** 0.5))
    return steps, side


def submit_slow(conn: redis.Redis, seconds: float = 4.0) -> str:
    """Enqueue a real task that runs about `seconds` on this machine; returns its id."""
    steps, side = slow_task_plan(seconds)
    return submit(conn, [SLOW_STEP] * steps, png_bytes(side, side, smooth=True))


def process_tree_alive(pids: Iterable[int]) -> list[int]:
    """The pids among `pids` that still exist (zombies excluded)."""
    import psutil

    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def die_now() -> None:
    """A poison task: kills the worker process running it, as a segfault in a kernel would."""
    os.kill(os.getpid(), signal.SIGKILL)


def enqueue_poison(conn: redis.Redis, queue: str = "pixelfleet:io") -> str:
    """Put a task that kills every worker taking it on `queue`; returns its id."""
    from workers import jobs

    job = jobs.queue(conn, queue).enqueue_call("tests.fleet_helpers.die_now",
                                               meta={"capabilities": ["io"], "submitted_at": time.time()})
    return job.id


def sleep_task(seconds: float) -> float:
    """A task that only takes time (for runtime checks that need no image engine)."""
    time.sleep(seconds)
    return seconds


def enqueue_sleep(conn: redis.Redis, seconds: float, queue: str = "pixelfleet:io") -> str:
    from workers import jobs

    job = jobs.queue(conn, queue).enqueue_call("tests.fleet_helpers.sleep_task", args=(seconds,),
                                               meta={"capabilities": ["io"], "submitted_at": time.time()})
    return job.id


# A real task (process_image) whose first execution lingers after its work and before its
# commit, as a worker that stalled or was cut off would: fencing tests supersede it there.
LINGER_KEY = "pixelfleet-test:linger"


def process_then_linger(payload: dict) -> dict:
    """workers.tasks.process_image, then the first execution to get here sleeps
    LINGER_KEY's seconds (the key is consumed, so the next execution does not)."""
    from rq import get_current_job

    from workers.tasks import process_image

    result = process_image(payload)
    job = get_current_job()
    seconds = job.connection.getdel(LINGER_KEY)
    if seconds:
        time.sleep(float(seconds))
    return result


def touch_redis_after(seconds: float) -> float:
    """A task that sleeps, then reads Redis on a client without retries: with Redis away
    at that moment it raises a Redis ConnectionError, as a real task's input read would."""
    import redis as redis_lib
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    time.sleep(seconds)
    client = redis_lib.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    client.get("pixelfleet-test:touch")
    return seconds
