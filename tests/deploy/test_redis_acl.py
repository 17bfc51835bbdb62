"""The compose file's Redis users, run for real: the fleet works as `pixelfleet` and that
user cannot FLUSHALL, CONFIG, DEBUG, MODULE or SHUTDOWN.

No Docker engine here, so the redis service's own `--user …` arguments (read from
docker-compose.yml, passwords filled in) are given to a local redis-server, and a real
worker process plus the API's readers run through the `pixelfleet` user.
"""
from __future__ import annotations

import subprocess
import sys
import time

import pytest
import redis

from tests.deploy.test_compose import ROOT, SERVICES
from tests.fleet_helpers import worker_env
from workers import routing, stats, status, storage
from workers.embedded_redis import find_redis_server, free_port
from workers.registry import read_workers

PASSWORDS = {"REDIS_PASSWORD": "fleet-pw", "REDIS_ADMIN_PASSWORD": "admin-pw"}
FORBIDDEN = [("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "SET", "appendonly", "no"), ("DEBUG", "SLEEP", "0"),
             ("MODULE", "LIST"), ("SHUTDOWN", "NOSAVE"), ("ACL", "SETUSER", "x", "on"), ("MONITOR",)]


def acl_args() -> list[str]:
    """The redis service's command from its first `--user`, with the passwords filled in."""
    command = SERVICES["redis"]["command"]
    args = command[command.index("--user"):]
    filled = []
    for arg in args:
        for name, value in PASSWORDS.items():
            arg = arg.replace(f"${{{name}:?set {name} in .env}}", value)
        assert "${" not in arg, arg
        filled.append(arg)
    return filled


@pytest.fixture
def acl_server(tmp_path):
    port = free_port()
    proc = subprocess.Popen([find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--dir", str(tmp_path), *acl_args()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    admin = redis.Redis(port=port, username="admin", password=PASSWORDS["REDIS_ADMIN_PASSWORD"])
    deadline = time.monotonic() + 10
    while True:
        try:
            admin.ping()
            break
        except redis.ConnectionError:
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def test_urls_in_compose_use_the_restricted_user():
    for name, service in SERVICES.items():
        url = (service.get("environment") or {}).get("REDIS_URL")
        if url:
            assert url.startswith("redis://pixelfleet:"), name


def test_the_fleet_runs_as_pixelfleet_and_pixelfleet_cannot_wreck_redis(acl_server, tmp_path):
    url = f"redis://pixelfleet:{PASSWORDS['REDIS_PASSWORD']}@127.0.0.1:{acl_server}/0"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=acl_server).ping()      # the passwordless default user is off
    conn = redis.Redis.from_url(url)
    for command in FORBIDDEN:
        with pytest.raises(redis.exceptions.NoPermissionError):
            conn.execute_command(*command)

    import io

    from PIL import Image
    def png(colour) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
        return buffer.getvalue()

    ok = routing.enqueue_task(conn, storage.store_input(conn, png((1, 2, 3))), [{"filter": "grayscale"}], {})
    doomed = routing.enqueue_task(conn, storage.store_input(conn, png((4, 5, 6))), [{"filter": "grayscale"}],
                                  {"device": "gpu"})
    assert status.cancel_task(conn, doomed)["status"] == "canceled"
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.run([sys.executable, "-m", "workers", "--name", "acl-w", "--capabilities", "io",
                             "--burst", "--no-warmup"], cwd=ROOT, env=worker_env(url), stdout=log,
                            stderr=subprocess.STDOUT, timeout=120)
    text = (tmp_path / "worker.log").read_text()
    assert worker.returncode == 0, text
    assert "NOPERM" not in text and "NoPermission" not in text, text
    assert status.task_status(conn, ok)["status"] == "finished"
    assert status.retry_task(conn, doomed)["status"] == "queued"
    assert [t["task_id"] for t in status.list_tasks(conn)] and read_workers(conn) == []
    assert stats.counters(conn)["completed"] == 1 and stats.recent_completions(conn, 60)
