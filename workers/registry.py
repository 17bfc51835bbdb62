"""The heartbeat registry: one JSON record per live worker, with a TTL.

Why not RQ's own worker hash: RQ refreshes it only between jobs (a SimpleWorker
running a 60 s task looks dead or stale), and it carries no capabilities, backend,
CPU or RSS. Ours is written every HEARTBEAT_INTERVAL by a background thread, also
while a task runs, and expires after HEARTBEAT_TTL (three periods), so "the record
exists" means "the worker is alive" — the reaper and the dashboards rely on that.

Record fields (docs/INTERFACES.md): name, host, pid, capabilities, backend, device,
state (idle|busy|warming|paused|stopping), current_task (busy/stopping only), last_task, done,
failed, cpu_percent, rss_mb, started_at, last_seen, paused_queues; read_workers adds heartbeat_age_s.
"""
from __future__ import annotations

import json
import time
from typing import Any

import redis

from workers import settings

STATES = ("warming", "idle", "busy", "paused", "stopping")
# The JSON type of each field a reader uses; a record whose field has another type
# (written by something else) gets None there, so no reader meets a surprise.
_TEXT, _NUMBER = (str,), (int, float)
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "host": _TEXT, "backend": _TEXT, "device": _TEXT, "state": _TEXT, "current_task": _TEXT,
    "pid": (int,), "done": (int,), "failed": (int,), "cpu_percent": _NUMBER, "rss_mb": _NUMBER,
    "started_at": _NUMBER, "last_seen": _NUMBER, "capabilities": (list,),
}


def heartbeat_key(name: str) -> str:
    return settings.HEARTBEAT_KEY.format(name=name)


def write_heartbeat(conn: redis.Redis, record: dict[str, Any], ttl: float | None = None) -> None:
    """Store one worker's record (one SET with PX): it vanishes unless rewritten in time."""
    ttl_ms = int((ttl if ttl is not None else settings.HEARTBEAT_TTL) * 1000)
    conn.set(heartbeat_key(record["name"]), json.dumps(record, separators=(",", ":")), px=max(ttl_ms, 1))


def delete_heartbeat(conn: redis.Redis, name: str) -> None:
    """Leave the registry at once (clean exit), instead of after HEARTBEAT_TTL."""
    conn.delete(heartbeat_key(name))


def _decode(raw: bytes | str | None, now: float) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except (TypeError, ValueError, RecursionError):
        return None   # a foreign or torn value is not a worker; never crash a reader
    if not isinstance(record, dict) or not isinstance(record.get("name"), str):
        return None
    for field, types in FIELD_TYPES.items():
        value = record.get(field)
        if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
            record[field] = None
    if record.get("capabilities") is not None and not all(isinstance(c, str) for c in record["capabilities"]):
        record["capabilities"] = None
    last_seen = record.get("last_seen")
    record["heartbeat_age_s"] = round(max(0.0, now - last_seen), 3) if isinstance(last_seen, (int, float)) else None
    return record


def read_worker(conn: redis.Redis, name: str) -> dict[str, Any] | None:
    """One worker's record, or None when it is not alive."""
    return _decode(conn.get(heartbeat_key(name)), time.time())


def read_workers(conn: redis.Redis) -> list[dict[str, Any]]:
    """Every live worker's record, sorted by name (SCAN + one MGET).

    The one reader of the registry: the API's metrics, W-core's task status
    ("no live worker has capabilities …"), the dashboard and the reaper use it.
    """
    keys = sorted(set(conn.scan_iter(match=settings.HEARTBEAT_PATTERN, count=500)))
    if not keys:
        return []
    now = time.time()
    records = [_decode(raw, now) for raw in conn.mget(keys)]
    return sorted((r for r in records if r is not None), key=lambda r: str(r["name"]))
