"""Compile and warm every kernel a worker may run, once, before it takes a task.

Why: numba compiles on first call (cache=True turns that into a disk load, still
tens of ms per kernel); paying it at start keeps the first task of a fresh worker
as fast as the rest. The worker reports state "warming" meanwhile.

Once per machine, not once per worker: each filter is compiled under its own file lock
beside numba's cache. Several workers starting together (`make run`: three on two
cores) share the work: each compiles the filters nobody else is compiling, and for a
filter another process holds, it waits and then loads the result from the cache in
milliseconds. Without the locks every worker compiled every kernel itself, all at
once: 53-56 s each on a fresh clone instead of about one compile's worth in total.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from workers.logs import get_logger, log_event

log = get_logger("workers.warmup")


def _variants(spec: Any) -> list[dict[str, Any]]:
    """Parameter sets that exercise each code path: defaults, then each choice value."""
    base: dict[str, Any] = {}
    for param in spec.params:
        if param.default is None and param.nullable and param.type in ("int", "float"):
            base[param.name] = max(param.min or 1, 4) if param.type == "int" else max(param.min or 0.5, 0.5)
            break   # one size is enough (e.g. resize: width alone)
    variants = [dict(base)]
    for param in spec.params:
        if param.type == "choice":
            variants += [{**base, param.name: choice} for choice in param.choices if choice != param.default]
    return variants


FILTERS_DIR = Path(__file__).resolve().parent.parent / "filters"


def lock_dir() -> Path | None:
    """Where the per-filter compile locks live: beside numba's cache for our kernels.

    NUMBA_CACHE_DIR when set (the images), else filters/__pycache__ (numba's default
    place for cache=True); a read-only tree falls back to a per-user temp folder keyed by
    the source path. None when nothing is writable (then every process compiles alone).
    """
    candidates = []
    if os.environ.get("NUMBA_CACHE_DIR", "").strip():
        candidates.append(Path(os.environ["NUMBA_CACHE_DIR"].strip()))
    candidates.append(FILTERS_DIR / "__pycache__")
    key = hashlib.sha256(str(FILTERS_DIR).encode()).hexdigest()[:12]
    candidates.append(Path(tempfile.gettempdir()) / f"pixelfleet-warmup-{os.getuid()}-{key}")
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".pixelfleet-warmup-probe"
            probe.touch()
            return folder
        except OSError:
            continue
    return None


@contextlib.contextmanager
def compile_lock(name: str, folder: Path | None, wait: bool = True) -> Iterator[bool]:
    """Hold the machine-wide lock for compiling `name`; yields False when `wait` is off
    and another process holds it (or True when no lock folder exists at all)."""
    if folder is None:
        yield True
        return
    with open(folder / f"pixelfleet-warmup-{name}.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _warm_one(name: str, spec: Any, images: list, backend: str, run_pipeline, validate_steps) -> None:
    for params in _variants(spec):
        try:
            steps = validate_steps([{"filter": name, "params": params}])
            for image in images:
                run_pipeline(image, steps, backend=backend)
        except Exception as exc:   # noqa: BLE001 — see warm_kernels
            log_event(log, "warmup_skipped", logging.WARNING, filter=name, params=params, error=str(exc))


def warm_kernels(capabilities: Iterable[str], backend: str = "cpu") -> dict[str, float]:
    """Run each filter of the given classes on a tiny image; returns ms per filter.

    First pass: every filter whose lock is free, compiled here (others compile theirs
    meanwhile); second pass: the rest, each after its lock is released, from the cache.
    A filter that refuses the tiny image is logged and skipped: warming must never stop
    a worker from starting.
    """
    try:
        from filters.pipeline import run_pipeline
        from filters.registry import FILTERS, validate_steps
    except ImportError as exc:   # the engine is incomplete: serve anyway, compile on first use
        log_event(log, "warmup_unavailable", logging.WARNING, error=str(exc))
        return {}

    caps = set(capabilities)
    rng = np.random.default_rng(0)
    images = [np.ascontiguousarray(rng.integers(0, 256, (24, 32, c), dtype=np.uint8)) for c in (3, 4)]
    folder = lock_dir()
    timings: dict[str, float] = {}
    pending = [name for name, spec in FILTERS.items() if spec.capability in caps]
    for wait in (False, True):
        for name in list(pending):
            with compile_lock(f"{backend}-{name}", folder, wait=wait) as held:
                if not held:
                    continue   # another process compiles it now; back to it in the second pass
                started = time.perf_counter()
                _warm_one(name, FILTERS[name], images, backend, run_pipeline, validate_steps)
                timings[name] = round((time.perf_counter() - started) * 1000, 1)
                pending.remove(name)
    return {name: timings[name] for name in FILTERS if name in timings}


def main() -> int:
    """`python -m workers.warmup`: compile every CPU kernel into numba's cache (image builds)."""
    timings = warm_kernels(("io", "cpu"), backend="cpu")
    print(" ".join(f"{name}={ms:.0f}ms" for name, ms in timings.items()))
    return 0 if timings else 1


if __name__ == "__main__":
    raise SystemExit(main())
