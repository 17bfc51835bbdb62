"""`python -m workers.fleet` (what `make run` starts): up, supervised, and down with nothing left."""
from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time

import psutil
import pytest
import redis
import requests

from tests.fleet_helpers import (ROOT, png_bytes, process_tree_alive, submit, wait_for_status, wait_for_worker,
                                 wait_until, worker_record)
from workers import settings
from workers.embedded_redis import free_port
from workers.fleet import parse_worker_specs


def _start_fleet(tmp_path, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, "Path"]:
    """The fleet in its own session; REDIS_URL only if `env` gives it (else embedded Redis)."""
    out = tmp_path / "fleet.out"
    full_env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    full_env.update(SKIP_CUDA_CHECK="1", PIXELFLEET_HEARTBEAT_INTERVAL="1.0", **(env or {}))
    proc = subprocess.Popen([sys.executable, "-m", "workers.fleet", *args], cwd=ROOT, env=full_env,
                            stdout=open(out, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    return proc, out


def _descendants(pid: int) -> list[int]:
    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def test_worker_specs_parse_and_typos_are_refused():
    assert parse_worker_specs("worker-1:io,worker-2:cpu,worker-3:all") == [
        ("worker-1", "io"), ("worker-2", "cpu"), ("worker-3", "all")]
    assert parse_worker_specs("a:io,cpu,b:gpu+io") == [("a", "io+cpu"), ("b", "gpu+io")]
    assert parse_worker_specs("io:io,cpu:cpu*2") == [("io", "io"), ("cpu-1", "cpu"), ("cpu-2", "cpu")]
    for bad in ("a:io,a:cpu", "a:ios", "io", "a:", "a:cpu*0", "a:cpu*x"):
        try:
            parse_worker_specs(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")


def test_fleet_embedded_redis_restarts_dead_worker_and_stops_clean(tmp_path, monkeypatch):
    """make run's shape: embedded Redis (private, AOF), images as files beside it, served by the
    API in front of Django; a dead worker restarted; Ctrl-C leaves nothing behind."""
    port, bind = free_port(), f"127.0.0.1:{free_port()}"
    proc, out = _start_fleet(tmp_path, "--api-bind", bind, "--workers", "fl-1:io,fl-2:cpu",
                             "--redis-port", str(port), "--data-dir", str(tmp_path / "redis"),
                             env={"PIXELFLEET_API_WORKERS": "1"})
    try:
        wait_until(lambda: "Pixelfleet is up (ready in" in out.read_text(), 120, what="the banner")
        # A private Redis by default: a random password, kept 0600 in the data folder,
        # shown nowhere; a client without it is refused.
        password_file = tmp_path / "redis" / "password"
        password = password_file.read_text().strip()
        assert len(password) >= 32 and stat.S_IMODE(password_file.stat().st_mode) == 0o600
        url_file = tmp_path / "redis" / "url"      # for make rq-info: the secret too, so 0600
        url = f"redis://:{password}@127.0.0.1:{port}/0"
        assert url_file.read_text().strip() == url and stat.S_IMODE(url_file.stat().st_mode) == 0o600
        banner = out.read_text()
        assert f"Redis    redis://:***@127.0.0.1:{port}/0" in banner and "fl-2 (cpu)" in banner
        assert f"info --url \"$(cat {url_file})\"" in banner
        assert banner.index("Pixelfleet is starting") < banner.index("Pixelfleet is up")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port, password="guess").ping()
        conn = redis.Redis.from_url(url)
        # "up" means up: both workers take tasks the moment the banner is printed.
        first = worker_record(conn, "fl-1")
        assert first["state"] in ("idle", "busy") and worker_record(conn, "fl-2")["state"] in ("idle", "busy")
        assert conn.config_get("appendonly")["appendonly"] == "yes"   # queued tasks survive a restart
        # The images of the local fleet are files beside its Redis, not in it (its AOF).
        images = (tmp_path / "redis" / "images").resolve()
        assert f"Images   file://{images}  (files beside the embedded Redis" in banner
        monkeypatch.setenv("PIXELFLEET_STORAGE_URL", f"file://{images}")   # this test submits like the API
        task = submit(conn, [{"filter": "grayscale"}], png_bytes(24, 16))
        assert wait_for_status(conn, task) == "finished"
        assert (images / "outputs" / task).is_file() and conn.exists(settings.OUTPUT_KEY.format(task_id=task)) == 0
        result = requests.get(f"http://{bind}/api/tasks/{task}/result/", timeout=10)   # in front of Django
        assert result.status_code == 200 and result.headers["Content-Type"] == "image/png"
        assert result.content == (images / "outputs" / task).read_bytes() and "Allow" not in result.headers
        waited = requests.post(f"http://{bind}/api/tasks/?wait=30", timeout=60, data={"filters": "grayscale"},
                               files={"image": ("small.png", png_bytes(20, 10, seed=3), "image/png")})
        assert waited.status_code == 200 and waited.headers["Content-Type"] == "image/png", waited.text
        assert (images / "outputs" / waited.headers["X-Task-Id"]).is_file()
        # A worker that dies is restarted under the same name.
        os.kill(first["pid"], signal.SIGKILL)
        wait_until(lambda: (r := worker_record(conn, "fl-1")) and r["pid"] != first["pid"] and r["state"] == "idle",
                   60, what="fl-1 restarted")
        assert re.search(r"event=child_exited child=fl-1 .*exit_code=-9", out.read_text())
        children = _descendants(proc.pid)
        assert len(children) >= 3   # redis-server + two workers
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, out.read_text()
        assert process_tree_alive(children) == []
        assert "event=stopped" in out.read_text()
        assert password not in out.read_text()   # neither banner nor any child's log line
    finally:
        if proc.poll() is None:
            for pid in _descendants(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.kill()


def test_fleet_with_api_serves_and_stops_clean(redis_server, redis_conn, tmp_path):
    bind = f"127.0.0.1:{free_port()}"
    proc, out = _start_fleet(tmp_path, "--workers", "fa-1:io", "--api-bind", bind,
                             env={"REDIS_URL": redis_server.url, "PIXELFLEET_API_WORKERS": "1"})
    try:
        wait_until(lambda: "Pixelfleet is up (ready in" in out.read_text(), 120, what="the banner")
        assert f"http://{bind}/api/docs/" in out.read_text()
        # "up" means up: at the banner the API answers "ok" and the worker takes tasks.
        health = requests.get(f"http://{bind}/api/health/?require_workers=1", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
        assert worker_record(redis_conn, "fa-1")["state"] in ("idle", "busy")
        children = _descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, out.read_text()
        wait_until(lambda: process_tree_alive(children) == [], 10, what="every child to exit")
        assert worker_record(redis_conn, "fa-1") is None
    finally:
        if proc.poll() is None:
            for pid in _descendants(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.kill()


def test_benchmark_command_runs_and_reports_a_ratio():
    """A tiny run of `python -m workers.benchmark --json` (speed itself is not asserted)."""
    import json

    out = subprocess.run([sys.executable, "-m", "workers.benchmark", "--tasks", "20", "--repeats", "1",
                          "--workers", "1", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=180,
                         env={k: v for k, v in os.environ.items() if k != "REDIS_URL"})
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    kinds = {(r["kind"], r["workers"]): r for r in report["results"]}
    assert set(kinds) == {("bare_rq_noop", 1), ("fleet_tiny_task", 1)}
    assert all(r["failed"] == 0 and r["tasks_per_s"] > 0 for r in kinds.values())
    assert report["ratio_fleet_over_bare"]["1"] > 0


@pytest.mark.slow
def test_fleet_restarts_its_redis_and_every_accepted_task_completes(tmp_path):
    """`make run`'s embedded Redis killed with SIGKILL while tasks are queued and running:
    the fleet restarts it (same port, data folder, AOF), the workers and the API carry
    on by themselves, and every task answered 202 before the crash completes once."""
    port, bind = free_port(), f"127.0.0.1:{free_port()}"
    proc, out = _start_fleet(tmp_path, "--workers", "fr-1:io", "--api-bind", bind, "--redis-port", str(port),
                             "--data-dir", str(tmp_path / "redis"), env={"PIXELFLEET_API_WORKERS": "1"})
    base = f"http://{bind}/api"
    try:
        wait_until(lambda: "Pixelfleet is up" in out.read_text(), 120, what="the banner")
        password = (tmp_path / "redis" / "password").read_text().strip()
        conn = redis.Redis(port=port, password=password, socket_connect_timeout=1)
        wait_for_worker(conn, "fr-1", "idle", timeout=120)
        assert conn.config_get("appendfsync")["appendfsync"] == "always"
        accepted = []
        for i in range(12):
            body = {"sample": "small", "steps": [{"filter": "blur", "params": {"radius": 3.0 + i}}]}
            response = requests.post(f"{base}/tasks/", json=body, timeout=30)
            assert response.status_code == 202, response.text
            accepted.append(response.json()["task_id"])
        old_pid = int(re.findall(r"event=child_started child=redis pid=(\d+)", out.read_text())[-1])
        os.kill(old_pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_until(lambda: len(re.findall(r"event=child_started child=redis", out.read_text())) == 2, 30,
                   what="the fleet to restart Redis")
        restarted = time.monotonic() - killed
        assert re.search(r"event=child_exited child=redis .*exit_code=-9", out.read_text())

        def all_finished():
            try:
                return all(conn.hget(f"rq:job:{t}", "status") == b"finished" for t in accepted)
            except redis.ConnectionError:
                return False
        wait_until(all_finished, 120, interval=0.3, what="every accepted task to finish")
        resumed = time.monotonic() - killed
        assert int(conn.hget(settings.COUNTERS_KEY, "completed")) == len(accepted)
        assert conn.hlen(settings.LOSSES_KEY) == 0
        after = requests.post(f"{base}/tasks/", json={"sample": "small", "steps": [{"filter": "grayscale"}]},
                              timeout=30)
        assert after.status_code == 202, after.text
        print(f"redis restarted {restarted:.1f} s after the kill; all {len(accepted)} accepted tasks "
              f"finished {resumed:.1f} s after it")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            for pid in _descendants(proc.pid):
                os.kill(pid, signal.SIGKILL)
            proc.kill()
