"""Freed buffers stay in a worker's heap: a task's large buffers cost no page faults the
next time (workers/allocator.py), and an operator's own malloc settings win."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Three 2 MB buffers touched and freed per "task", as a thumbnail task's decode, resize
# and encode buffers are: without the setting glibc gives the heap top back every time.
SCRIPT = """
import resource, sys
from workers.allocator import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
import numpy as np
def task():
    buffers = [np.ones(2 << 20, np.uint8) for _ in range(3)]
    del buffers
for _ in range(3):
    task()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    task()
print(kept, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def _faults(mode: str, env: dict[str, str] | None = None) -> tuple[str, float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=ROOT, env={**clean, **(env or {})},
                         capture_output=True, text=True, timeout=120, check=True).stdout.split()
    return out[0], float(out[1])


def test_a_task_s_buffers_are_reused_without_page_faults():
    kept, faults = _faults("keep")
    _, faults_by_default = _faults("plain")
    assert kept == "True"
    assert faults < 10, faults                       # 0 measured
    assert faults_by_default > 500, faults_by_default   # ~990 measured: 3 x 2 MB of new pages


def test_an_operator_s_malloc_settings_are_left_alone():
    kept, _ = _faults("keep", {"MALLOC_ARENA_MAX": "2"})
    assert kept == "False"


def test_the_worker_entry_point_sets_it_before_any_task():
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", "import workers.__main__ as m; print(m.KEEPS_FREED_MEMORY)"],
                         cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "True", out.stderr[-2000:]
