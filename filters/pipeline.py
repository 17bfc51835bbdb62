"""Run validated steps over one image, on the CPU or on a CUDA device, with timings.

For the GPU the image is copied to the device once, every step runs on device arrays,
and the result is copied back once: per-step host round trips would cost more than the
kernels. Steps are validated here again (raw dicts or Step objects): whatever reached a
worker through Redis is not trusted.
"""
from __future__ import annotations

import importlib
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numba
import numpy as np

from filters.dispatch import gpu_device_name, resolve_backend, simulator_enabled
from filters.errors import FilterFailed
from filters.io import Decoded, check_image, decode_scaled
from filters.registry import FILTERS, Step, validate_steps
from filters.shrink import Applied, ShrinkPlan, Upscale, plan_shrink

# Below this many pixels a step runs on one numba thread: a parallel region's start and
# barrier cost more than the work, and on a loaded machine a preempted OpenMP thread makes
# every other thread wait (a 64x64 brightness took ~10 ms instead of ~0.02 ms).
SERIAL_MAX_PIXELS = 256 * 256

# progress(step, total, filter_name): step counts from 1 and is called before that step.
Progress = Callable[[int, int, str], Any]


@dataclass(frozen=True)
class StepTiming:
    """Wall time of one step in milliseconds (GPU: synchronised, so kernels are included)."""

    name: str
    ms: float


@dataclass
class PipelineResult:
    """The output image and how it was made."""

    image: np.ndarray
    timings: list[StepTiming] = field(default_factory=list)
    backend: str = "cpu"
    device: str | None = None

    @property
    def total_ms(self) -> float:
        return sum(t.ms for t in self.timings)


def decode_for(data: bytes, steps: Iterable[Any]) -> tuple[Decoded, Applied]:
    """Decode `data` as small as `steps` allow (filters.shrink) and the steps to run on it.

    run_pipeline(decoded.image, applied.steps, upscale=applied.upscale) then gives the
    full-decode path's output size, and its pixels within the bound docs/filters.md states.
    """
    checked = validate_steps(steps)
    plans: list[ShrinkPlan | None] = []

    def reduction_for(height: int, width: int) -> ShrinkPlan | None:
        plans.append(plan_shrink(checked, height, width))
        return plans[-1]

    decoded = decode_scaled(data, reduction_for)
    plan = plans[-1] if plans else None
    if plan is None:
        return decoded, Applied(checked, 1)
    return decoded, plan.apply(checked, decoded.factor, decoded.height, decoded.width)


def run_pipeline(
    image: np.ndarray,
    steps: Iterable[Any],
    backend: str = "auto",
    *,
    progress: Progress | None = None,
    deadline: float | None = None,
    upscale: Upscale | None = None,
) -> PipelineResult:
    """Apply `steps` in order; `deadline` (a time.monotonic() value) is checked between
    steps and raises TimeoutError, so a task stops at a step boundary, not mid-kernel.
    `upscale` (from decode_for) scales a shrunk pixelate's blocks back to full size, inside
    that step's timing."""
    checked = validate_steps(steps)
    image = check_image(image)
    chosen = resolve_backend(backend)
    if chosen == "gpu":
        return _run_gpu(image, checked, progress, deadline, upscale)
    return _run_cpu(image, checked, progress, deadline, upscale)


def _before_step(i: int, steps: list[Step], progress: Progress | None, deadline: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        done = ", ".join(s.name for s in steps[:i]) or "none"
        raise TimeoutError(
            f"pipeline deadline passed before step {i + 1}/{len(steps)} ({steps[i].name}); "
            f"finished: {done}"
        )
    if progress is not None:
        progress(i + 1, len(steps), steps[i].name)


def _run_cpu(image: np.ndarray, steps: list[Step], progress, deadline, upscale) -> PipelineResult:
    timings = []
    for i, step in enumerate(steps):
        _before_step(i, steps, progress, deadline)
        kernel = FILTERS[step.name].cpu
        start = time.perf_counter()
        with _threads_for(image):
            image = kernel(image, **step.params)
        if upscale is not None and upscale.index == i:
            from filters.cpu_pixelate import upscale_nearest

            image = upscale_nearest(image, upscale.block, upscale.height, upscale.width)
        timings.append(StepTiming(step.name, (time.perf_counter() - start) * 1000))
        image = _checked_output(image, step.name)
    return PipelineResult(image, timings, "cpu", _cpu_device())


@contextmanager
def _threads_for(image: np.ndarray) -> Iterator[None]:
    """One numba thread for a small image, the configured count otherwise."""
    if image.shape[0] * image.shape[1] > SERIAL_MAX_PIXELS:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _run_gpu(image: np.ndarray, steps: list[Step], progress, deadline, upscale) -> PipelineResult:
    gpu = importlib.import_module("filters.gpu")
    missing = [s.name for s in steps if FILTERS[s.name].gpu is None]
    if missing:
        raise FilterFailed(f"no GPU kernel for {', '.join(missing)}; run it with backend 'cpu'")
    timings = []
    device_image = gpu.upload(image)
    for i, step in enumerate(steps):
        _before_step(i, steps, progress, deadline)
        kernel = FILTERS[step.name].gpu
        start = time.perf_counter()
        device_image = kernel(device_image, **step.params)
        if upscale is not None and upscale.index == i:
            device_image = gpu.upscale_blocks(device_image, upscale.block, upscale.height, upscale.width)
        gpu.synchronize()
        timings.append(StepTiming(step.name, (time.perf_counter() - start) * 1000))
    out = _checked_output(gpu.download(device_image), steps[-1].name)
    device = "CUDA simulator" if simulator_enabled() else gpu_device_name()
    return PipelineResult(out, timings, "gpu", device)


def _checked_output(image: Any, name: str) -> np.ndarray:
    """A kernel's result must honour the image contract too; a broken one is a bug."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] not in (3, 4):
        raise RuntimeError(f"filter {name!r} returned {type(image).__name__} "
                           f"{getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}: "
                           "not a uint8 (H, W, 3|4) image")
    return np.ascontiguousarray(image)


def _cpu_device() -> str:
    """'cpu (N threads)': numba's thread count, which is what the kernels use."""
    from numba import get_num_threads

    threads = get_num_threads()
    return f"cpu ({threads} thread{'' if threads == 1 else 's'})"
