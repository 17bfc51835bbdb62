"""CPU time per image, by kind of process, for one system under load: where the time goes.

Why: on a shared 2-core machine images/s moves with everything else that runs; the CPU
time each image costs each process moves much less, and it says which part to make
cheaper. Read from the processes' own counters (psutil: user + system time) of the
system's whole process tree before and after a run; the load generator (this process,
whose threads are the clients) is counted as `client`.
"""
from __future__ import annotations

import os
from collections import Counter

import psutil

# The first pattern found in a process's command line names its kind.
KINDS = (("redis-server", "redis"), ("gunicorn", "api"), ("-m workers --name", "worker"),
         ("workers.fleet", "supervisor"), ("thumbor", "thumbor"))


def kind_of(cmdline: str) -> str:
    return next((kind for pattern, kind in KINDS if pattern in cmdline), "other")


def _tree(root_pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(root_pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def snapshot(root_pid: int) -> dict[int, tuple[str, float]]:
    """pid -> (kind, CPU seconds so far) for the tree under `root_pid` and this process."""
    seen: dict[int, tuple[str, float]] = {}
    for proc in _tree(root_pid):
        try:
            times = proc.cpu_times()
            seen[proc.pid] = (kind_of(" ".join(proc.cmdline())), times.user + times.system)
        except psutil.Error:
            continue
    own = psutil.Process(os.getpid()).cpu_times()
    seen[os.getpid()] = ("client", own.user + own.system)
    return seen


def spent(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> Counter:
    """CPU seconds by kind between two snapshots (processes present in both)."""
    total: Counter = Counter()
    for pid, (kind, seconds) in after.items():
        if pid in before:
            total[kind] += seconds - before[pid][1]
    return total


def per_image(seconds_by_kind: Counter, images: int) -> dict[str, float]:
    """ms per image by kind, plus `server` (everything but the client)."""
    if images <= 0:
        return {}
    out = {kind: round(s * 1000 / images, 1) for kind, s in sorted(seconds_by_kind.items()) if s > 0}
    out["server"] = round(sum(s for k, s in seconds_by_kind.items() if k != "client") * 1000 / images, 1)
    return out
