"""Compile and warm every kernel a worker may run, once, before it takes a task.

Why: numba compiles on first call (cache=True turns that into a disk load, still
tens of ms per kernel); paying it at start keeps the first task of a fresh worker
as fast as the rest. The worker reports state "warming" meanwhile.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterable

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


def warm_kernels(capabilities: Iterable[str], backend: str = "cpu") -> dict[str, float]:
    """Run each filter of the given classes on a tiny image; returns ms per filter.

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
    timings: dict[str, float] = {}
    for name, spec in FILTERS.items():
        if spec.capability not in caps:
            continue
        started = time.perf_counter()
        for params in _variants(spec):
            try:
                steps = validate_steps([{"filter": name, "params": params}])
                for image in images:
                    run_pipeline(image, steps, backend=backend)
            except Exception as exc:   # noqa: BLE001 — see docstring
                log_event(log, "warmup_skipped", logging.WARNING, filter=name, params=params, error=str(exc))
        timings[name] = round((time.perf_counter() - started) * 1000, 1)
    return timings


def main() -> int:
    """`python -m workers.warmup`: compile every CPU kernel into numba's cache (image builds)."""
    timings = warm_kernels(("io", "cpu"), backend="cpu")
    print(" ".join(f"{name}={ms:.0f}ms" for name, ms in timings.items()))
    return 0 if timings else 1


if __name__ == "__main__":
    raise SystemExit(main())
