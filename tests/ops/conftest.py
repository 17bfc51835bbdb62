"""`live_fleet`: a real API (gunicorn) and real worker processes on the test redis-server.

Module-scoped: starting gunicorn and warming two workers costs seconds, so each live test
module shares one fleet; it is torn down at the module's end so no worker of ours ever
takes work from another package's tests. The fleet uses its own Redis database (flushed
at start) and requires a bearer token for submits, so the tools' --token path is exercised.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from workers.embedded_redis import free_port

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
TOKEN = "ops-test-token"
FLEET_DB = 3
WORKERS = {"ops-io": "io", "ops-all": "io,cpu"}     # every queue of a CPU-only fleet is served
START_TIMEOUT = 120.0


@dataclass
class LiveFleet:
    url: str
    token: str
    redis_url: str
    log_dir: Path
    env: dict
    api: subprocess.Popen | None = None
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)

    # --- talking to it ------------------------------------------------------------------
    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=10, **kw)

    def tool(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        """Run one of our scripts as an operator would: a separate process, by path."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIXELFLEET_")}
        env.update(PIXELFLEET_URL=self.url, PIXELFLEET_TOKEN=self.token, COLUMNS="120")
        return subprocess.run([PYTHON, *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)

    def wait_until_idle(self, timeout: float = 60.0) -> None:
        """Until no task is queued or running (so counters are settled)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.get("/api/metrics/").json()
            if body["queue_length"] == 0 and body["busy_workers"] == 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"fleet not idle after {timeout}s: {body}")

    # --- lifecycle ----------------------------------------------------------------------
    def start_api(self) -> None:
        """gunicorn with the project's config; the bind address comes from PIXELFLEET_API_BIND."""
        cmd = [PYTHON, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
        self.api = self._spawn("api", cmd, cwd=ROOT / "webapp")

    def start_worker(self, name: str, caps: str) -> None:
        self.workers[name] = self._spawn(name, [PYTHON, "-m", "workers", "--name", name,
                                                "--capabilities", caps], cwd=ROOT)

    def _spawn(self, name: str, cmd: list[str], cwd: Path) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")
        return subprocess.Popen(cmd, cwd=cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def wait_ready(self, workers: int, timeout: float = START_TIMEOUT) -> dict:
        """Until /api/health/ answers and `workers` workers are live and not warming."""
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                last = self.get("/api/health/").json()
                info = last.get("workers", {})
                if info.get("live", 0) >= workers and not info.get("by_state", {}).get("warming"):
                    return last
            except (requests.RequestException, ValueError) as exc:
                last = repr(exc)
            time.sleep(0.25)
        raise RuntimeError(f"fleet not ready in {timeout}s; last health: {last}\n{self.logs()}")

    def _check_alive(self) -> None:
        for name, proc in [("api", self.api), *self.workers.items()]:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}\n{self.logs()}")

    def stop_workers(self, timeout: float = 20.0) -> None:
        """SIGTERM every worker (graceful: it finishes its task) and wait for it to exit."""
        for proc in self.workers.values():
            _signal(proc, signal.SIGTERM)
        for name, proc in list(self.workers.items()):
            _wait(proc, timeout)
            del self.workers[name]

    def stop_api(self) -> None:
        if self.api is not None:
            _signal(self.api, signal.SIGTERM)
            _wait(self.api, 15)
            self.api = None

    def stop(self) -> None:
        self.stop_workers()
        self.stop_api()

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-tail:]}"
                         for p in sorted(self.log_dir.glob("*.log")))


def _signal(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)   # own session: reaches gunicorn's or RQ's children too
        except ProcessLookupError:
            pass


def _wait(proc: subprocess.Popen, timeout: float) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal(proc, signal.SIGKILL)
        proc.wait(timeout=10)


def fleet_env(redis_url: str, bind: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXELFLEET_")}
    env.update(REDIS_URL=redis_url, PIXELFLEET_API_BIND=bind, PIXELFLEET_API_TOKENS=TOKEN,
               PIXELFLEET_ENV="development", PIXELFLEET_HEARTBEAT_INTERVAL="1",
               DJANGO_SETTINGS_MODULE="webapp.settings", SKIP_CUDA_CHECK="1",
               PIXELFLEET_API_WORKERS="1", PIXELFLEET_API_THREADS="8",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "webapp")]))
    env.pop("NUMBA_ENABLE_CUDASIM", None)   # real processes, as an operator runs them
    return env


@contextmanager
def running_fleet(redis_server, db: int, log_dir: Path, workers: dict[str, str], token: str = TOKEN,
                  **env: str | None) -> Iterator[LiveFleet]:
    """A flushed Redis database `db`, the API (gunicorn) and `workers` (name -> capabilities)
    started and ready; stopped on exit. No token means an open API; `env` overrides the
    fleet's environment (None removes a variable)."""
    import redis as redis_lib

    redis_url = f"redis://127.0.0.1:{redis_server.port}/{db}"
    redis_lib.Redis.from_url(redis_url).flushdb()
    bind = f"127.0.0.1:{free_port()}"
    environment = fleet_env(redis_url, bind)
    env["PIXELFLEET_API_TOKENS"] = token or None
    for name, value in env.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    fleet = LiveFleet(url=f"http://{bind}", token=token, redis_url=redis_url, log_dir=log_dir, env=environment)
    try:
        fleet.start_api()
        for name, caps in workers.items():
            fleet.start_worker(name, caps)
        fleet.wait_ready(len(workers))
        yield fleet
    finally:
        fleet.stop()


@pytest.fixture(scope="module")
def live_fleet(redis_server, tmp_path_factory):
    """API + two workers (io; io+cpu) against the test redis-server, ready to take tasks."""
    with running_fleet(redis_server, FLEET_DB, tmp_path_factory.mktemp("fleet-logs"), WORKERS) as fleet:
        yield fleet
