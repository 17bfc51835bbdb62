"""Several hosts for real: Redis and the API on one network host, a worker on each of
two others, every host a Linux network namespace (tests/netns_hosts.py), all traffic
over veth links through a bridge. One worker host is cut off mid-task.

What must hold: the task completes on the other host within 15 s; when the link comes
back, the cut-off worker's late result is fenced (discarded), the task is counted once,
and that worker rejoins the fleet by itself.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import redis
from rq.job import Job

from tests.fleet_helpers import (LINGER_KEY, ROOT, WorkerSet, submit, wait_for_status, wait_for_worker, wait_until,
                                 worker_record, worker_env)
from tests.netns_hosts import NetnsHosts, netns_unavailable
from workers import routing, settings, stats
from workers.jobs import fetch_job
from workers.embedded_redis import RedisServer

pytestmark = pytest.mark.slow
TOKEN = "partition-test-token"
_HTTP = """
import json, sys, urllib.request
method, url, body, token = sys.argv[1:5]
request = urllib.request.Request(url, method=method, data=body.encode() or None,
                                 headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(json.dumps({"status": response.status, "body": response.read().decode()}))
except urllib.error.HTTPError as exc:
    print(json.dumps({"status": exc.code, "body": exc.read().decode()}))
except OSError as exc:
    print(json.dumps({"status": 0, "body": str(exc)}))
"""


def http(net: NetnsHosts, host: str, method: str, url: str, body: dict | None = None) -> tuple[int, dict | str]:
    """An HTTP request made on `host` (so it crosses the links like any client's)."""
    out = net.run(host, sys.executable, "-c", _HTTP, method, url, json.dumps(body) if body else "", TOKEN).stdout
    answer = json.loads(out.strip().splitlines()[-1])
    try:
        return answer["status"], json.loads(answer["body"])
    except ValueError:
        return answer["status"], answer["body"]


def test_worker_host_cut_off_mid_task(tmp_path, monkeypatch):
    reason = netns_unavailable()
    if reason:
        pytest.skip(f"network namespaces unavailable: {reason}")
    short = Path(tempfile.mkdtemp(prefix="pf-"))          # a unix socket path must stay short
    try:
        with NetnsHosts(["db", "h1", "h2"]) as net, _Processes() as procs:
            db = net.addr("db")
            server = RedisServer(port=6379, bind=db, data_dir=tmp_path / "redis", appendonly=True,
                                 appendfsync="always", unixsocket=short / "redis.sock", prefix=net.wrap("db"))
            procs.redis = server.start()
            url = f"redis://{db}:6379/0"
            # The test itself is on no host: it reads Redis through the unix socket only.
            conn = redis.Redis(unix_socket_path=str(short / "redis.sock"), socket_connect_timeout=2)
            api_env = worker_env(url, PIXELFLEET_API_BIND=f"{db}:8000", PIXELFLEET_API_WORKERS="1",
                                 PIXELFLEET_ALLOWED_HOSTS=db, DJANGO_SECRET_KEY="partition-test-" + "x" * 40,
                                 PIXELFLEET_API_TOKENS=TOKEN)
            procs.api = subprocess.Popen([*net.wrap("db"), sys.executable, "-m", "gunicorn", "-c",
                                          "gunicorn.conf.py"], cwd=ROOT / "webapp", env=api_env,
                                   stdout=open(tmp_path / "api.log", "wb"), stderr=subprocess.STDOUT,
                                   start_new_session=True)
            base = f"http://{db}:8000/api"
            with WorkerSet(url, tmp_path) as fleet:
                hosts = {"nh-1": "h1", "nh-2": "h2"}
                for name, host in hosts.items():
                    fleet.start(name, "io", "--no-warmup", wrap=net.wrap(host))
                for name in hosts:
                    record = wait_for_worker(conn, name, "idle", timeout=120)
                wait_until(lambda: http(net, "h2", "GET", f"{base}/health/")[0] == 200, 60, interval=0.5,
                           what="the API on host db, seen from host h2")

                # A task submitted from a worker host, through the API on the db host.
                status, body = http(net, "h1", "POST", f"{base}/tasks/",
                                    {"sample": "small", "steps": [{"filter": "grayscale"}]})
                assert status == 202, body
                assert wait_for_status(conn, body["task_id"], timeout=60) == "finished"

                # The long one: its first execution lingers after its work, before its commit.
                monkeypatch.setattr(routing, "TASK_FUNCTION", "tests.fleet_helpers.process_then_linger")
                conn.set(LINGER_KEY, 9)
                task_id = submit(conn, [{"filter": "brightness", "params": {"factor": 1.3}}])
                runner = wait_until(lambda: next((n for n in hosts if (worker_record(conn, n) or {}).get(
                    "current_task") == task_id), None), 30, interval=0.05, what="a worker to take the task")
                other = next(n for n in hosts if n != runner)
                wait_until(lambda: conn.get(LINGER_KEY) is None, 30, interval=0.05, what="the task running")
                net.cut(hosts[runner])
                cut = time.monotonic()
                assert wait_for_status(conn, task_id, timeout=30) == "finished", fleet.logs()
                completed_in = time.monotonic() - cut
                assert completed_in < 15, f"completed on the other host {completed_in:.1f} s after the cut"
                assert fetch_job(conn, task_id).return_value()["worker"] == other
                # Let the cut-off worker finish its own run while still cut off, then mend the link.
                time.sleep(max(0.0, 11 - (time.monotonic() - cut)))
                net.mend(hosts[runner])
                mended = time.monotonic()
                fenced = wait_until(lambda: next((line for line in fleet.workers[runner].log_text().splitlines()
                                                  if "event=fenced" in line), None), 60, what="the late result fenced")
                fenced_in = time.monotonic() - mended
                assert f"task={task_id}" in fenced and "discarded=finished" in fenced
                back = wait_until(lambda: (r := worker_record(conn, runner)) and r["state"] == "idle" and r, 60,
                                  what="the cut-off worker back in the fleet")
                rejoined_in = time.monotonic() - mended

                job = fetch_job(conn, task_id)
                assert job.get_status() == "finished" and job.return_value()["worker"] == other
                assert len(job.results()) == 1
                assert stats.counters(conn)["completed"] == 2          # the small task and this one, once
                logs = fleet.logs()
                assert logs.count(f"task={task_id} event=done") == 1, logs
                assert int(conn.hget(settings.LOSSES_KEY, task_id)) == 1   # it was lost once, for real
                # Work goes on across the mended link.
                status, body = http(net, "h2", "POST", f"{base}/tasks/",
                                    {"sample": "small", "steps": [{"filter": "grayscale"}]})
                assert status == 202 and wait_for_status(conn, body["task_id"], timeout=60) == "finished"
                print(f"partition: completed on {other} {completed_in:.1f} s after the cut; late result fenced "
                      f"{fenced_in:.1f} s and {runner} back (pid {back['pid']}) {rejoined_in:.1f} s after the mend")
                for name in hosts:
                    assert fleet.stop(name) == 0
    finally:
        shutil.rmtree(short, ignore_errors=True)


class _Processes:
    """The API and Redis started inside the namespaces: stopped before the namespaces go."""

    def __init__(self) -> None:
        self.api: subprocess.Popen | None = None
        self.redis: RedisServer | None = None

    def __enter__(self) -> "_Processes":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.api is not None and self.api.poll() is None:
            os.killpg(self.api.pid, signal.SIGTERM)
            try:
                self.api.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.api.pid, signal.SIGKILL)
                self.api.wait()
        if self.redis is not None:
            self.redis.stop()
