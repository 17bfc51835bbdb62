"""The two systems under test, started as their users start them, and stopped cleanly.

- Pixelfleet: `python -m workers.fleet` (what `make run` runs: embedded redis-server,
  the API under gunicorn, the default three workers) on free ports, with its own Redis
  data folder, until /api/health/ says ok and every worker is ready.
- thumbor: its own venv (var/bench/thumbor-venv, from bench/thumbor-requirements.txt,
  never the project's), file loader on the benchmark's images, 2 processes, no storage
  of originals or results, JPEG quality as given.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from workers.embedded_redis import free_port

ROOT = Path(__file__).resolve().parent.parent
THUMBOR_VENV = ROOT / "var" / "bench" / "thumbor-venv"
THUMBOR_BIN = THUMBOR_VENV / "bin" / "thumbor"
START_TIMEOUT_S = 300.0


@dataclass
class Server:
    """A started system: its base URL, its process (own session) and its log file."""

    name: str
    url: str
    proc: subprocess.Popen
    log_path: Path

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT if self.name == "pixelfleet" else signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def _spawn(name: str, cmd: list[str], work: Path, env: dict[str, str], cwd: Path = ROOT) -> tuple[subprocess.Popen, Path]:
    log_path = work / f"{name}.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, log_path


def _wait_for(server: Server, ready, what: str, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            if ready():
                return
        except (requests.RequestException, ValueError):
            pass
        time.sleep(0.5)
    server.stop()
    raise RuntimeError(f"{server.name} not ready ({what}) after {timeout:.0f} s:\n{server.log_tail()}")


def start_pixelfleet(work: Path, workers: str | None = None) -> Server:
    """The fleet as `make run` starts it; `workers` overrides its worker list (smoke runs)."""
    data = work / "redis"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "PIXELFLEET_WORKERS")}
    env.update(PIXELFLEET_API_BIND=f"127.0.0.1:{port}", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "workers.fleet", "--redis-port", str(free_port()), "--data-dir", str(data)]
    if workers:
        cmd += ["--workers", workers]
    proc, log_path = _spawn("pixelfleet", cmd, work, env)
    server = Server("pixelfleet", f"http://127.0.0.1:{port}", proc, log_path)
    expected = len(workers.split(",")) if workers else 3

    def ready() -> bool:
        health = requests.get(f"{server.url}/api/health/", timeout=5).json()
        return health.get("status") == "ok" and health["workers"]["live"] >= expected and \
            not health["workers"]["by_state"].get("warming")

    _wait_for(server, ready, "health ok with every worker ready")
    return server


def thumbor_installed() -> bool:
    return THUMBOR_BIN.exists()


def start_thumbor(work: Path, images: Path, quality: int, processes: int = 2) -> Server:
    """thumbor from its own venv, reading `images` with the file loader."""
    conf = work / "thumbor.conf"
    conf.write_text("\n".join([
        "LOADER = 'thumbor.loaders.file_loader'",
        f"FILE_LOADER_ROOT_PATH = {str(images)!r}",
        "STORAGE = 'thumbor.storages.no_storage'",
        "RESULT_STORAGE = None",
        f"QUALITY = {quality}",
        "ALLOW_UNSAFE_URL = True",
        "MAX_AGE = 0",
        "",
    ]))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    cmd = [str(THUMBOR_BIN), "--port", str(port), "--ip", "127.0.0.1", "--conf", str(conf),
           "--processes", str(processes), "--log-level", "error"]
    proc, log_path = _spawn("thumbor", cmd, work, env)
    server = Server("thumbor", f"http://127.0.0.1:{port}", proc, log_path)
    _wait_for(server, lambda: requests.get(f"{server.url}/healthcheck", timeout=5).status_code == 200,
              "/healthcheck 200", timeout=120)
    return server
