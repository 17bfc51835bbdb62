"""`python -m workers.startup_benchmark [--cold]`: seconds from `make run` to the first finished task.

What a newcomer waits for: `make run` (the installed venv's fleet: embedded Redis, API,
worker-1 io, worker-2 cpu, worker-3 all) is started, a task is submitted as soon as the
API accepts one, and the clock stops when that task has finished. --cold points numba's
cache at an empty folder, as on a fresh clone with an installed venv. The fleet runs
on free ports with its own Redis data folder, so it never meets a running `make run`.
Prints one line per run, and the banner's "ready in" figure.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from workers.embedded_redis import free_port

ROOT = Path(__file__).resolve().parent.parent
TASK = {"sample": "small", "steps": [{"filter": "sharpen", "params": {"amount": 1.5}},
                                     {"filter": "pixelate", "params": {"block_size": 6, "palette": "pico-8"}}]}


def first_task_seconds(cold: bool, timeout: float = 300.0) -> tuple[float, float | None, str]:
    """(s to the first finished task, s the banner said, the fleet's output)."""
    scratch = Path(tempfile.mkdtemp(prefix="pixelfleet-start-"))
    bind = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "NUMBA_ENABLE_CUDASIM")}
    env.update(PIXELFLEET_API_BIND=bind, PIXELFLEET_REDIS_PORT=str(free_port()),
               PIXELFLEET_REDIS_DIR=str(scratch / "redis"))
    if cold:   # numba's cache empty; the venv's bytecode stays (pip compiled it at install)
        env.update(NUMBA_CACHE_DIR=str(scratch / "numba"))
    out = scratch / "fleet.out"
    started = time.monotonic()
    proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env, stdout=open(out, "wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://{bind}"
    try:
        task_id = None
        while task_id is None:
            if time.monotonic() - started > timeout or proc.poll() is not None:
                raise RuntimeError(f"no task accepted in {timeout} s:\n{out.read_text()[-3000:]}")
            try:
                resp = requests.post(f"{url}/api/tasks/", json=TASK, timeout=5)
                task_id = resp.json().get("task_id") if resp.status_code == 202 else None
            except requests.RequestException:
                pass
            if task_id is None:
                time.sleep(0.1)
        while True:
            status = requests.get(f"{url}/api/tasks/{task_id}/", timeout=5).json().get("status")
            if status in ("finished", "failed"):
                break
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"task {task_id} not done in {timeout} s:\n{out.read_text()[-3000:]}")
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        if status != "finished":
            raise RuntimeError(f"first task {status}:\n{out.read_text()[-3000:]}")
        deadline = time.monotonic() + 60
        while "ready in" not in out.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        match = re.search(r"ready in ([0-9.]+) s", out.read_text())
        return elapsed, float(match.group(1)) if match else None, out.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.startup_benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="an empty numba cache (a fresh clone)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--show-output", action="store_true", help="print the fleet's output of the last run")
    args = parser.parse_args(argv)
    output = ""
    for run in range(1, args.runs + 1):
        load = os.getloadavg()[0]
        seconds, banner, output = first_task_seconds(args.cold)
        print(f"run {run} ({'cold' if args.cold else 'warm'} cache, load average {load:.2f} on "
              f"{os.cpu_count()} cores): first task finished {seconds:.1f} s after `make run`; "
              f"banner said ready in {banner} s", flush=True)
    if args.show_output:
        print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
