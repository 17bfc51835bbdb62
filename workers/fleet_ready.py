"""When `make run` may say "Pixelfleet is up": the API answers and every worker takes tasks.

Why: the banner used to print as soon as the processes were spawned, before the API
listened and about a minute before any worker had compiled its kernels; a newcomer's
first request then failed or waited without a word. The fleet now prints one line at
once (what is starting and roughly how long it takes), a progress line while it waits,
and the banner when the fleet really is up, with the time it took.

`ReadinessWatch.poll()` is non-blocking: the supervisor calls it from its loop, so a
child that dies while warming is still restarted meanwhile.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import redis

from workers.readiness import READY_STATES
from workers.registry import read_worker

PROGRESS_EVERY_S = 10.0
GIVE_UP_AFTER_S = 240.0          # then the banner says what is still not ready, once
COLD_ESTIMATE = "about 20-60 s: the first start on this machine compiles the kernels into numba's cache"
WARM_ESTIMATE = "a few seconds: kernels load from numba's cache"


def kernels_cached(folder: Path | None) -> bool:
    """True when numba's cache for our kernels exists (a warm start), judged by its index files."""
    if folder is None or not folder.is_dir():
        return False
    return sum(1 for _ in folder.rglob("*.nbi")) >= 10


def probe_url(bind: str) -> str | None:
    """The health URL of an API bound to `bind` ("127.0.0.1:8000", "0.0.0.0:80"); None for a socket."""
    first = bind.split(",")[0].strip()
    if first.startswith("unix:"):
        return None
    host, _, port = first.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/api/health/"


def api_answers(url: str, timeout: float = 1.0) -> bool:
    """The API answered /api/health/ with JSON (any status: a 503 still means it listens)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            json.loads(resp.read())
        return True
    except urllib.error.HTTPError as exc:
        try:
            json.loads(exc.read())
            return True
        except ValueError:
            return False
    except (OSError, ValueError):
        return False


@dataclass
class ReadinessWatch:
    """Tracks the API and each named worker until all are ready; says what it waits for."""

    redis_url: str
    workers: list[str]
    health_url: str | None          # None: no API to wait for
    started: float = field(default_factory=time.monotonic)
    api_ready: bool = False
    ready_workers: set[str] = field(default_factory=set)
    states: dict[str, str] = field(default_factory=dict)
    _last_progress: float = field(default_factory=time.monotonic)
    _conn: redis.Redis | None = None
    gave_up: bool = False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def done(self) -> bool:
        return (self.api_ready or self.health_url is None) and self.ready_workers >= set(self.workers)

    def poll(self) -> None:
        """One look at the API and the heartbeat registry."""
        if self.health_url and not self.api_ready:
            self.api_ready = api_answers(self.health_url)
        if self._conn is None:
            self._conn = redis.Redis.from_url(self.redis_url, socket_connect_timeout=1, socket_timeout=2)
        for name in self.workers:
            try:
                record = read_worker(self._conn, name)
            except redis.RedisError:
                return
            state = str((record or {}).get("state") or "starting")
            self.states[name] = state
            if state in READY_STATES or state == "paused":   # paused by an operator: up, as asked
                self.ready_workers.add(name)

    def waiting_for(self) -> list[str]:
        """What is not ready yet, in words: ["API (not answering yet)", "worker-2 (warming)"]."""
        out = [] if self.api_ready or self.health_url is None else ["API (not answering yet)"]
        out += [f"{name} ({self.states.get(name, 'starting')})" for name in self.workers
                if name not in self.ready_workers]
        return out

    def progress_line(self) -> str | None:
        """Every PROGRESS_EVERY_S while waiting: one line saying what is still warming."""
        now = time.monotonic()
        if self.done or now - self._last_progress < PROGRESS_EVERY_S:
            return None
        self._last_progress = now
        return f"  … {self.elapsed:.0f} s, still waiting for: {', '.join(self.waiting_for())}"

    def should_give_up(self) -> bool:
        """After GIVE_UP_AFTER_S the banner prints anyway, saying what is not ready."""
        if not self.gave_up and self.elapsed > GIVE_UP_AFTER_S:
            self.gave_up = True
            return True
        return False
