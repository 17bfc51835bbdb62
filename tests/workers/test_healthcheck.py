"""The container HEALTHCHECK: healthy exactly while this worker's heartbeat record lives."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from workers.registry import write_heartbeat


def run_healthcheck(redis_url: str, worker_name: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "REDIS_URL": redis_url}
    env.pop("WORKER_NAME", None)
    if worker_name:
        env["WORKER_NAME"] = worker_name
    return subprocess.run([sys.executable, "-m", "workers.healthcheck"], env=env,
                          capture_output=True, text=True, timeout=60)


def test_healthy_only_while_the_record_lives(redis_conn, redis_server):
    missing = run_healthcheck(redis_server.url, "hc-1")
    assert missing.returncode == 1 and "no live heartbeat" in missing.stdout

    record = {"name": "hc-1", "host": socket.gethostname(), "pid": os.getpid(),
              "state": "idle", "last_seen": time.time()}
    write_heartbeat(redis_conn, record)
    by_name = run_healthcheck(redis_server.url, "hc-1")
    assert by_name.returncode == 0, by_name.stdout
    assert "healthy: hc-1 idle" in by_name.stdout
    by_host = run_healthcheck(redis_server.url, None)   # default names are <host>-<pid>
    assert by_host.returncode == 0, by_host.stdout


def test_unreachable_redis_is_unhealthy_with_the_reason():
    result = run_healthcheck("redis://127.0.0.1:1/0", "hc-1")
    assert result.returncode == 1
    assert "Redis unreachable" in result.stdout
