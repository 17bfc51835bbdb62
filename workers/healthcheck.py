"""`python -m workers.healthcheck`: exit 0 when this host's worker is alive in the registry.

Why the registry and not the process: a worker whose heartbeat thread died, or that lost
Redis for good, is useless even if its process still runs. The container's HEALTHCHECK
runs this; with WORKER_NAME set it checks that record, otherwise any record of this host
(the default name is `<host>-<pid>`).
"""
from __future__ import annotations

import os
import socket
import sys

import redis

from workers import settings
from workers.registry import read_worker, read_workers


def find_own_record(conn: redis.Redis) -> dict | None:
    """This host's worker record: by WORKER_NAME, else by host name."""
    name = os.environ.get("WORKER_NAME", "").strip()
    if name:
        return read_worker(conn, name)
    host = socket.gethostname()
    return next((r for r in read_workers(conn) if r.get("host") == host), None)


def main() -> int:
    try:
        record = find_own_record(settings.get_redis())
    except redis.RedisError as exc:
        print(f"unhealthy: Redis unreachable at {settings.redacted_url(settings.redis_url())}: {exc}")
        return 1
    if record is None:
        print("unhealthy: no live heartbeat record for this worker")
        return 1
    print(f"healthy: {record['name']} {record.get('state')} (heartbeat {record.get('heartbeat_age_s')} s ago)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
