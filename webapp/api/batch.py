"""Execution modes for the batch endpoints: sequential, threads, processes, the fleet.

The same pipeline runs over the same images in each mode so the timings compare like
with like:
- sequential: a plain loop in the API process;
- threading: a ThreadPoolExecutor; it only helps where the kernels release the GIL
  (numba `nogil=True`) or already run in parallel (`parallel=True` uses all cores, so
  threads then mostly compete for the same cores);
- multiprocessing: a ProcessPoolExecutor with the *spawn* context (forking a process
  whose numba OpenMP pool is running can deadlock or crash the child). The pool is
  created lazily, reused, and its children compile every kernel once at start; the
  start-up is reported separately (`startup_ms`), while pickling each image to the
  child and the result back is inside `total_ms` - that is the real price of processes;
- distributed: the fleet, through the Redis queue, waited for with a bound.
Django-free on purpose: spawned children import this module.
"""
from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

LOCAL_MODES = ("sequential", "threading", "multiprocessing")
POOL_SIZE = max(1, min(4, os.cpu_count() or 1))
_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def significant(value: float, digits: int = 3) -> float:
    """`value` to 3 significant digits: a 0.004x speed-up must not print as 0.0."""
    return float(f"{value:.{digits}g}")


@dataclass
class ModeResult:
    """Timings of one mode over the batch; `speedup` is filled in against sequential."""

    mode: str
    workers: int
    total_ms: float = 0.0
    per_image_ms: list[float] = field(default_factory=list)
    startup_ms: float = 0.0
    output_shapes: list[list[int]] = field(default_factory=list)
    note: str = ""
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, baseline_ms: float | None = None) -> dict[str, Any]:
        images = len(self.per_image_ms)
        body: dict[str, Any] = {
            "workers": self.workers,
            "total_ms": round(self.total_ms, 2),
            "per_image_ms": [round(ms, 2) for ms in self.per_image_ms],
            "mean_image_ms": round(sum(self.per_image_ms) / images, 2) if images else None,
            "images_per_second": round(images / (self.total_ms / 1000), 2) if self.total_ms else None,
            "speedup_vs_sequential": (significant(baseline_ms / self.total_ms)
                                      if baseline_ms and self.total_ms and not self.error else None),
        }
        if self.startup_ms:
            body["startup_ms"] = round(self.startup_ms, 2)
        if self.output_shapes:
            body["output_size"] = {"width": self.output_shapes[0][1], "height": self.output_shapes[0][0]}
        if self.note:
            body["note"] = self.note
        if self.error:
            body["error"] = self.error
        body.update(self.extra)
        return body


# --- The unit of work, shared by every local mode -------------------------------------
def process_one(image: np.ndarray, steps: list) -> tuple[float, tuple[int, ...], np.ndarray]:
    """Run the pipeline on one image on the CPU; (ms measured where it ran, shape, image)."""
    from filters.pipeline import run_pipeline

    start = time.perf_counter()
    result = run_pipeline(image, steps, backend="cpu")
    return (time.perf_counter() - start) * 1000, result.image.shape, result.image


def warm_child() -> None:
    """Pool initializer: compile (or load from numba's cache) the CPU kernels once per
    spawned child, with the fleet workers' own warm-up, so no timed image pays for it."""
    from workers.warmup import warm_kernels

    warm_kernels(("io", "cpu"), backend="cpu")


def _child_ready(_: int = 0) -> int:
    return os.getpid()


def process_pool() -> tuple[ProcessPoolExecutor, float]:
    """The shared spawn pool and the ms this call spent starting it (0 when reused)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            return _pool, 0.0
        start = time.perf_counter()
        pool = ProcessPoolExecutor(max_workers=POOL_SIZE,
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=warm_child)
        try:
            # One trivial job per child: returns once the children have started and warmed.
            list(pool.map(_child_ready, range(POOL_SIZE)))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        _pool = pool
        return pool, (time.perf_counter() - start) * 1000


def shutdown_pool() -> None:
    """Stop the spawn pool's children (at exit, and in tests)."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown(wait=True, cancel_futures=True)
            _pool = None


atexit.register(shutdown_pool)


def _collect(mode: str, workers: int, run: Callable[[], Iterable], startup_ms: float = 0.0) -> ModeResult:
    """Time `run()` to its last result; each output image is dropped as soon as it arrives
    (the batch's outputs are never all held at once)."""
    per_image: list[float] = []
    shapes: list[list[int]] = []
    start = time.perf_counter()
    for ms, shape, _ in run():
        per_image.append(ms)
        shapes.append(list(shape))
    total = (time.perf_counter() - start) * 1000
    return ModeResult(mode=mode, workers=workers, total_ms=total, startup_ms=startup_ms,
                      per_image_ms=per_image, output_shapes=shapes)


def run_sequential(images: list[np.ndarray], steps: list) -> ModeResult:
    return _collect("sequential", 1, lambda: (process_one(img, steps) for img in images))


def run_threading(images: list[np.ndarray], steps: list) -> ModeResult:
    workers = max(1, min(len(images), POOL_SIZE))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch") as pool:
        result = _collect("threading", workers,
                          lambda: pool.map(process_one, images, [steps] * len(images)))
    result.note = ("threads share one interpreter: they overlap only where kernels release "
                   "the GIL, and numba's parallel kernels already use every core")
    return result


def run_multiprocessing(images: list[np.ndarray], steps: list) -> ModeResult:
    try:
        pool, startup_ms = process_pool()
        result = _collect("multiprocessing", POOL_SIZE,
                          lambda: pool.map(process_one, images, [steps] * len(images)),
                          startup_ms=startup_ms)
    except BrokenProcessPool as exc:
        # A child died (killed, out of memory): drop the pool so the next call starts a
        # fresh one, and report it in this mode's entry rather than failing the request.
        shutdown_pool()
        return ModeResult(mode="multiprocessing", workers=POOL_SIZE,
                          error=f"the process pool broke ({exc}); it is restarted on the next call")
    result.note = ("spawned processes: each image is pickled to a child and its result "
                   "pickled back (inside total_ms); starting the pool is startup_ms, paid "
                   "once per API process")
    return result


RUNNERS: dict[str, Callable[[list[np.ndarray], list], ModeResult]] = {
    "sequential": run_sequential,
    "threading": run_threading,
    "multiprocessing": run_multiprocessing,
}


def warm_here(image: np.ndarray, steps: list) -> tuple[float, tuple[int, ...]]:
    """Run the pipeline once on the first image in this process, untimed: (ms, output shape).

    The first run pays numba's compile/cache load and first-touch costs at this size
    (resampling tables, fresh output buffers); without it the mode measured first -
    sequential - would carry them and every other mode would look faster than it is.
    The output shape lets the caller refuse a batch whose outputs would be too large.
    """
    ms, shape, _ = process_one(image, steps)
    return ms, shape


def compare(modes: tuple[str, ...], images: list[np.ndarray], steps: list) -> dict[str, dict]:
    """Run each local mode in turn; speed-ups against the sequential run of the same call."""
    results = {mode: RUNNERS[mode](images, steps) for mode in modes}
    baseline = results["sequential"].total_ms if "sequential" in results else None
    return {mode: r.to_dict(baseline) for mode, r in results.items()}


def latency_stats(samples_ms: list[float]) -> dict[str, float | None]:
    """min / mean / p50 / p95 / p99 / max of a list of latencies (linear interpolation)."""
    from api.metrics import percentile

    if not samples_ms:
        return {k: None for k in ("min", "mean", "p50", "p95", "p99", "max")}
    return {"min": round(min(samples_ms), 2),
            "mean": round(sum(samples_ms) / len(samples_ms), 2),
            **{f"p{p}": round(percentile(samples_ms, p), 2) for p in (50, 95, 99)},
            "max": round(max(samples_ms), 2)}


def stress(mode: str, image: np.ndarray, steps: list, iterations: int) -> dict[str, Any]:
    """`iterations` pipeline runs of one image in `mode`, with per-run latency statistics."""
    result = RUNNERS[mode]([image] * iterations, steps)
    body = result.to_dict()
    body["latency_ms"] = latency_stats(result.per_image_ms)
    body["iterations"] = iterations
    body["mode"] = mode
    return body


# --- The fleet as one more mode ---------------------------------------------------------
TERMINAL_STATUSES = ("finished", "failed", "canceled")
POLL_FIRST_S = 0.005       # first sleep between polls; grows x1.5 ...
POLL_MAX_S = 0.1           # ... up to this, so a long wait costs ~10 reads a second


def wait_for_tasks(conn, task_ids: list[str], timeout_s: float,
                   sleep: Callable[[float], None] = time.sleep) -> dict[str, dict | None]:
    """Poll the tasks' status until all are terminal or `timeout_s` passes; never busy-loops.

    Returns the last status dict read for each id (None when unknown). Short sleeps first
    (a small task finishes in milliseconds), growing to POLL_MAX_S.
    """
    from workers.status import task_status

    deadline = time.monotonic() + max(0.0, timeout_s)
    statuses: dict[str, dict | None] = {tid: None for tid in task_ids}
    pending = list(task_ids)
    delay = POLL_FIRST_S
    while True:
        for tid in list(pending):
            statuses[tid] = task_status(conn, tid)
            if statuses[tid] and statuses[tid].get("status") in TERMINAL_STATUSES:
                pending.remove(tid)
        remaining = deadline - time.monotonic()
        if not pending or remaining <= 0:
            return statuses
        sleep(min(delay, remaining))
        delay = min(POLL_MAX_S, delay * 1.5)


def capable_workers(conn, caps: frozenset[str]) -> list[dict]:
    """Live (not stopping) workers whose capabilities include `caps`."""
    from api.metrics import worker_capabilities
    from workers.registry import read_workers

    return [w for w in read_workers(conn)
            if w.get("state") != "stopping" and caps <= worker_capabilities(w)]


def run_distributed(conn, images_png: list[bytes], steps: list, timeout_s: float) -> ModeResult:
    """Enqueue one task per image on the fleet and wait (bounded) for all of them.

    With no live worker able to run the pipeline nothing is enqueued and the entry says
    so, instead of waiting for a worker that is not there.
    """
    from filters.registry import required_capabilities
    from workers.routing import enqueue_task, queue_name

    caps = frozenset(required_capabilities(steps, "cpu"))
    label = "+".join(sorted(caps))
    workers = capable_workers(conn, caps)
    if not workers:
        return ModeResult(mode="distributed", workers=0, error=(
            f"no live worker has capabilities {label}: nothing was enqueued "
            f"(start one with `python -m workers --capabilities {label.replace('+', ',')}`)"))
    plain = [{"filter": s.name, "params": dict(s.params)} for s in steps]
    from workers.storage_budget import check_capacity
    check_capacity(conn, sum(len(d) for d in images_png))   # 503 + Retry-After above the storage mark
    start = time.perf_counter()
    task_ids = [enqueue_task(conn, None, plain, {"format": "png", "device": "cpu", "source": "batch"}, data=data)
                for data in images_png]
    statuses = wait_for_tasks(conn, task_ids, timeout_s)
    total = (time.perf_counter() - start) * 1000
    done = [s for s in statuses.values() if s and s.get("status") == "finished"]
    result = ModeResult(mode="distributed", workers=len(workers), total_ms=total,
                        per_image_ms=[float(s.get("processing_ms") or 0) for s in done],
                        extra={"queue": queue_name(caps), "task_ids": task_ids,
                               "queue_wait_ms": [s.get("queue_wait_ms") for s in done],
                               "ran_on": sorted({str(s.get("worker")) for s in done})})
    result.note = ("the fleet through Redis: includes storing the input, queueing, the "
                   "worker's decode and encode, and polling; per_image_ms is the worker's "
                   "processing time")
    unfinished = {tid: (s or {}).get("status", "unknown") for tid, s in statuses.items()
                  if not s or s.get("status") != "finished"}
    if unfinished:
        result.error = (f"{len(unfinished)} of {len(task_ids)} task(s) not finished within "
                        f"{timeout_s:g} s: {unfinished}")
    return result
