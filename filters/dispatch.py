"""Which backend runs a pipeline: detect a usable CUDA GPU without initialising CUDA here.

A process that has initialised CUDA cannot hand a working context to a forked child, and
RQ, gunicorn and multiprocessing may all fork. So the question "is there a GPU?" is asked
of a separate Python process (`subprocess`, not fork) exactly once, and the answer is
cached for the life of this process.

- SKIP_CUDA_CHECK=1 (true/yes) -> no GPU, without starting anything.
- NUMBA_ENABLE_CUDASIM=1 -> no GPU: the simulator runs the CUDA code path on the CPU for
  tests and is never "a GPU" for `backend="auto"`.
- `resolve_backend("gpu")` is an explicit request: it runs the numba.cuda path, which in
  the simulator means simulated kernels (that is how the GPU kernels are tested); with
  neither a device nor the simulator it raises FilterFailed naming the reason.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass

from filters.errors import FilterFailed, ValidationError

BACKENDS = ("auto", "cpu", "gpu")
PROBE_TIMEOUT_S = 60.0
_TRUE = ("1", "true", "yes", "on")

# Runs in a fresh interpreter: the only place CUDA is ever initialised for detection.
_PROBE = r"""
import json
try:
    from numba import cuda
    ok = bool(cuda.is_available())
    name = None
    if ok:
        name = cuda.get_current_device().name
        name = name.decode() if isinstance(name, bytes) else str(name)
    print(json.dumps({"available": ok, "name": name,
                      "reason": None if ok else "numba.cuda found no usable device"}))
except Exception as exc:
    print(json.dumps({"available": False, "name": None,
                      "reason": f"{type(exc).__name__}: {exc}"}))
"""


@dataclass(frozen=True)
class GpuStatus:
    """The probe's answer: available, the device's name, and why not when not."""

    available: bool
    name: str | None
    reason: str | None


_lock = threading.Lock()
_cached: GpuStatus | None = None


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def simulator_enabled() -> bool:
    """NUMBA_ENABLE_CUDASIM is on: numba.cuda is the CPU simulator in this process."""
    return _flag("NUMBA_ENABLE_CUDASIM")


def gpu_status() -> GpuStatus:
    """Whether a real CUDA GPU is usable, asked of a child process once and cached."""
    global _cached
    if _flag("SKIP_CUDA_CHECK"):
        return GpuStatus(False, None, "SKIP_CUDA_CHECK is set")
    if simulator_enabled():
        return GpuStatus(False, None, "NUMBA_ENABLE_CUDASIM is set: the simulator is not a GPU")
    with _lock:
        if _cached is None:
            _cached = _probe()
        return _cached


def _probe() -> GpuStatus:
    env = dict(os.environ)
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True,
            timeout=PROBE_TIMEOUT_S, env=env, check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return GpuStatus(False, None, f"GPU probe could not run: {exc}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return GpuStatus(False, None, f"GPU probe exited {done.returncode}: {tail}")
    answer = json.loads(lines[-1])
    return GpuStatus(bool(answer["available"]), answer.get("name"), answer.get("reason"))


def gpu_available() -> bool:
    """True when a real CUDA device is usable; never initialises CUDA in this process."""
    return gpu_status().available


def gpu_device_name() -> str | None:
    """The CUDA device's name (e.g. 'NVIDIA H100 80GB HBM3'), or None without one."""
    return gpu_status().name


def resolve_backend(requested: str) -> str:
    """'cpu' or 'gpu' for a requested 'auto' | 'cpu' | 'gpu'."""
    if requested not in BACKENDS:
        raise ValidationError(
            f"backend must be one of {', '.join(BACKENDS)}, got {requested!r}"
        )
    if requested == "cpu":
        return "cpu"
    if requested == "auto":
        return "gpu" if gpu_available() else "cpu"
    if simulator_enabled():
        return "gpu"
    status = gpu_status()
    if not status.available:
        raise FilterFailed(f"backend 'gpu' requested but no CUDA GPU is usable here ({status.reason})")
    return "gpu"


def _reset_cache() -> None:
    """Forget the cached probe (tests only)."""
    global _cached
    with _lock:
        _cached = None
