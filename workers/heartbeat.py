"""The heartbeat thread: writes this worker's registry record every HEARTBEAT_INTERVAL.

Why a thread: a SimpleWorker runs its task in the main thread, so a loop-driven
heartbeat would go silent during a long task and the reaper would requeue a task
that is still running. A daemon thread keeps beating while numba kernels run
(they release the GIL between Python steps), survives Redis outages (it logs the
outage once and keeps trying), and also drives the fleet-wide reaper pass.

Why the reaper waits after an outage: every heartbeat record expires during an outage
longer than the TTL (or with the server restarted), so the first worker back would see
every other worker as dead and give their running tasks back. A worker judges others
only once they have had one full TTL plus one beat to write their records again,
counted from its own reconnection or from a new Redis server (its run_id changed, or
it is younger than that: a restart or a failover).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import psutil
import redis

from workers import settings
from workers.logs import get_logger, log_event
from workers.registry import delete_heartbeat, write_heartbeat
from workers.runtime import Runtime

log = get_logger("workers.heartbeat")


@dataclass
class WorkerHealth:
    """What the heartbeat reports. The main thread writes it, the heartbeat thread reads it."""

    runtime: Runtime
    state: str = "warming"
    current_task: str | None = None
    last_task: str | None = None
    done: int = 0
    failed: int = 0
    started_at: float = field(default_factory=time.time)
    paused_queues: list[str] = field(default_factory=list)   # of its queues, those paused

    def record(self, process: psutil.Process) -> dict[str, Any]:
        """The registry record (docs/INTERFACES.md fields) as of now.

        current_task only while the worker is busy (or stopping with a task in hand): RQ
        marks the worker idle a moment before our execute_job clears the task, and an idle
        worker must never look as if it still ran its last one (`last_task` says that).
        """
        rt = self.runtime
        state = self.state
        current = self.current_task if state in ("busy", "stopping") else None
        try:
            cpu = process.cpu_percent(None)
            rss_mb = process.memory_info().rss / 2**20
        except psutil.Error:
            cpu, rss_mb = 0.0, 0.0
        return {
            "name": rt.name, "host": rt.host, "pid": rt.pid,
            "capabilities": sorted(rt.capabilities), "backend": rt.backend, "device": rt.device,
            "state": state, "current_task": current, "last_task": self.last_task,
            "done": self.done, "failed": self.failed,
            "cpu_percent": round(cpu, 1), "rss_mb": round(rss_mb, 1),
            "started_at": self.started_at, "last_seen": time.time(),
            "paused_queues": list(self.paused_queues),
        }


class HeartbeatThread(threading.Thread):
    """Beats every `interval` seconds (or at once after beat_now()); never dies on Redis errors."""

    def __init__(self, conn: redis.Redis, health: WorkerHealth, interval: float = settings.HEARTBEAT_INTERVAL,
                 after_beat: Callable[[], None] | None = None) -> None:
        super().__init__(name=f"heartbeat-{health.runtime.name}", daemon=True)
        self.conn = conn
        self.health = health
        self.interval = interval
        self.ttl = interval * 3
        self.after_beat = after_beat
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._process = psutil.Process()
        self._process.cpu_percent(None)   # first call primes the counter
        self._outage_since: float | None = None
        self.beats = 0
        # The reaper waits until every worker had a fair chance to beat again (module doc).
        self.judge_grace_s = self.ttl + interval
        self._judge_after = 0.0
        self._redis_run_id: str | None = None
        self._holding_logged = False
        self._holding_reason = ""
        # RQ's own worker keys (hash, executions set), kept alive here instead of by RQ's
        # loop, which would spend 9 of its ~20 Redis round trips per task on it.
        self.keep_alive: tuple[str, ...] = ()
        self.keep_alive_ttl = 480
        # Called (in this thread) when the first keep-alive key is gone: Redis lost it
        # (restarted without persistence, flushed), so the worker registers again.
        self.on_keys_lost: Callable[[redis.Redis], None] | None = None

    def beat_now(self) -> None:
        """Write the record without waiting for the next period (state changes)."""
        self._wake.set()

    def stop(self, remove: bool = True) -> None:
        """Stop beating; with `remove`, leave the registry now rather than after the TTL."""
        self._stopped.set()
        self._wake.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=self.interval + 5)
        if remove:
            try:
                delete_heartbeat(self.conn, self.health.runtime.name)
            except redis.RedisError:
                pass   # Redis is away: the record expires on its own within the TTL

    def beat(self) -> bool:
        """One write; True when Redis took it. Logs an outage once, and its end once."""
        try:
            keep_alive = self.keep_alive
            with self.conn.pipeline(transaction=False) as pipe:
                pipe.info("server")
                write_heartbeat(pipe, self.health.record(self._process), ttl=self.ttl)
                for key in keep_alive:
                    pipe.expire(key, self.keep_alive_ttl)
                results = pipe.execute()
            self._note_server(results[0])
            if keep_alive and not results[2] and self.on_keys_lost is not None:
                self.on_keys_lost(self.conn)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            if self._outage_since is None:
                self._outage_since = time.monotonic()
                log_event(log, "redis_unreachable", logging.WARNING, worker=self.health.runtime.name,
                          thread="heartbeat", error=str(exc))
            return False
        if self._outage_since is not None:
            log_event(log, "redis_reachable", worker=self.health.runtime.name, thread="heartbeat",
                      outage_s=round(time.monotonic() - self._outage_since, 1))
            self._outage_since = None
            self._hold_judgement("reconnected after an outage", self.judge_grace_s)
        self.beats += 1
        return True

    def _note_server(self, info: dict[str, Any]) -> None:
        """A new Redis server (restart, failover) or a young one: hold judgement."""
        run_id = str(info.get("run_id") or "")
        if self._redis_run_id is not None and run_id != self._redis_run_id:
            self._hold_judgement(f"new Redis server (run_id {run_id[:8]})", self.judge_grace_s)
        self._redis_run_id = run_id
        uptime = float(info.get("uptime_in_seconds") or 0)
        if uptime < self.judge_grace_s:
            self._hold_judgement(f"Redis up only {uptime:.0f} s", self.judge_grace_s - uptime)

    def _hold_judgement(self, reason: str, seconds: float) -> None:
        now = time.monotonic()
        if now + seconds > self._judge_after:
            if self._judge_after <= now:   # a new hold, not an extension: worth a line
                self._holding_logged = False
                self._holding_reason = reason
            self._judge_after = now + seconds

    def may_judge(self) -> bool:
        """Whether this worker may declare others dead now (module doc)."""
        left = self._judge_after - time.monotonic()
        if left <= 0:
            return True
        if not self._holding_logged:
            self._holding_logged = True
            log_event(log, "reaper_holding", worker=self.health.runtime.name, reason=self._holding_reason,
                      for_s=round(left, 1))
        return False

    def run(self) -> None:
        while not self._stopped.is_set():
            ok = self.beat()
            if ok and self.after_beat is not None and not self._stopped.is_set() and self.may_judge():
                try:
                    self.after_beat()
                except (redis.ConnectionError, redis.TimeoutError, OSError):
                    pass   # the next beat reports the outage
                except Exception:   # a reaper bug must not silence the heartbeat
                    log.exception("reaper pass failed",
                                  extra={"event": "reaper_error", "worker": self.health.runtime.name})
            self._wake.wait(self.interval)
            self._wake.clear()
