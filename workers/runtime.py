"""What the current process is: its worker name, capabilities and compute backend.

Why a module of its own: the task function (workers.tasks) runs inside our
SimpleWorker's process and must know whether this worker owns a GPU without
probing CUDA again; the worker sets this once at start, the task only reads it.
A process that never set it (an API test's in-process burst worker, a script)
gets the safe default: CPU backend, no name.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Iterable



@dataclass(frozen=True)
class Runtime:
    """Identity of the running worker; `backend` is "gpu" only when a real GPU was granted."""

    name: str = ""
    capabilities: frozenset[str] = field(default_factory=frozenset)
    backend: str = "cpu"
    device: str | None = None
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)

    @property
    def has_gpu(self) -> bool:
        return self.backend == "gpu"


_current = Runtime()


def current() -> Runtime:
    """The runtime of this process (default: unnamed CPU worker)."""
    return _current


def set_current(runtime: Runtime) -> Runtime:
    """Declare what this process is; called once by the worker before it takes tasks."""
    global _current
    _current = runtime
    return runtime


def backend_for(device: str) -> str:
    """The backend a task asking for `device` (auto|cpu|gpu) runs on in this process."""
    return "gpu" if _current.has_gpu and device != "cpu" else "cpu"


def grant_capabilities(requested: Iterable[str], gpu_check=None) -> tuple[frozenset[str], str | None]:
    """The capabilities this process may really serve, and why one was dropped (or None).

    `gpu` is granted only when a usable CUDA device exists; the check is
    filters.dispatch.gpu_available(), which asks a spawned child, so CUDA is never
    initialised here before we decide.
    """
    caps = frozenset(requested)
    if "gpu" not in caps:
        return caps, None
    if gpu_check is None:
        try:
            from filters.dispatch import gpu_available as gpu_check
        except ImportError as exc:   # no way to check means no GPU, said plainly
            return caps - {"gpu"}, f"gpu requested but the GPU check is unavailable ({exc}): serving without gpu"
    if gpu_check():
        return caps, None
    reason = "gpu requested but no usable CUDA device (or SKIP_CUDA_CHECK=1): serving without gpu"
    return caps - {"gpu"}, reason   # may be empty: the caller refuses to start then
