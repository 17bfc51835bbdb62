"""Every Redis key name, queue name and fleet default, in one place.

The API, the workers, the monitoring tools and the tests all import from here, so a
key or a default is never spelled twice. Values that operators tune come from the
environment; the names of keys do not.
"""
from __future__ import annotations

import os
import re
import weakref
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis

from workers.serializer import StrictJSONSerializer


def env_str(name: str, default: str) -> str:
    """The environment's value for `name`, or `default` when unset or empty."""
    value = os.environ.get(name, "").strip()
    return value or default


def env_int(name: str, default: int) -> int:
    """An integer setting; a malformed value is a configuration error, said plainly."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    """A float setting; a malformed value is a configuration error, said plainly."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None


# --- Connection -----------------------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_PASSWORD_FILE = "password"          # in the embedded server's data folder, mode 0600
_URL_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_SECRET_QUERY = re.compile(r"(?i)((?:^|&)password=)[^&]*")


def redis_dir() -> Path:
    """The embedded server's data folder (`make run`): PIXELFLEET_REDIS_DIR or ./var/redis."""
    return Path(env_str("PIXELFLEET_REDIS_DIR", str(ROOT / "var" / "redis")))


def is_url_safe(secret: str) -> bool:
    return bool(_URL_SAFE.fullmatch(secret))


def redis_url() -> str:
    """REDIS_URL, read at call time so that tests and the fleet launcher can set it.

    Unset, the local embedded server's: DEFAULT_REDIS_URL with the password `make run`
    keeps in redis_dir(), so a tool or worker started by hand on the same host gets in.
    """
    url = os.environ.get("REDIS_URL", "").strip()
    if url:
        return url
    try:
        secret = (redis_dir() / REDIS_PASSWORD_FILE).read_text().strip()
    except OSError:
        return DEFAULT_REDIS_URL
    return DEFAULT_REDIS_URL.replace("redis://", f"redis://:{secret}@", 1) if is_url_safe(secret) else DEFAULT_REDIS_URL


def redacted_url(url: str) -> str:
    """`url` fit to print or log: its password (user-info or ?password=) replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparseable Redis URL)"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, sep, _secret = userinfo.partition(":")
        netloc = f"{user}:***@{host}" if sep else f"***@{host}"   # redis://secret@host: the secret
    query = _SECRET_QUERY.sub(r"\1***", parts.query)
    if netloc == parts.netloc and query == parts.query:
        return url
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "") + (
        f"#{parts.fragment}" if parts.fragment else "")


@lru_cache(maxsize=8)
def _connection_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def get_redis(url: str | None = None) -> redis.Redis:
    """A shared (thread-safe, pooled) client for `url` or REDIS_URL. Returns bytes."""
    return _connection_for(url or redis_url())


_async_clients: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()


def get_async_redis(url: str | None = None) -> "redis.asyncio.Redis":
    """A redis.asyncio client for `url` or REDIS_URL, one per event loop (pools are bound
    to the loop that made them). For the API's waiting paths, where a BLMOVE may block
    for up to MAX_WAIT seconds."""
    import asyncio

    import redis.asyncio

    loop = asyncio.get_running_loop()
    url = url or redis_url()
    clients = _async_clients.setdefault(loop, {})
    client = clients.get(url)
    if client is None:
        # One connection per waiting request (its BLMOVE holds it): room for MAX_WAITERS
        # of them plus the quick calls; past that a caller waits up to 5 s for one.
        # redis-py's default read timeout (5 s) would cut a longer BLMOVE: allow MAX_WAIT + 5.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, max_connections=MAX_WAITERS + 64, timeout=5, socket_connect_timeout=5,
            socket_timeout=MAX_WAIT + 5)
        client = clients[url] = redis.asyncio.Redis(connection_pool=pool)
    return client


# --- Names ----------------------------------------------------------------------------
PREFIX = "pixelfleet"
CAPABILITIES: tuple[str, ...] = ("io", "cpu", "gpu")   # every capability class there is
QUEUE_PREFIX = f"{PREFIX}:"                              # queue name: "pixelfleet:cpu+io"

INPUT_KEY = f"{PREFIX}:input:{{digest}}"                 # content-addressed input bytes
INPUT_REFS_KEY = f"{PREFIX}:inputrefs:{{digest}}"        # set of the task ids that need an input
INPUT_LOCK_KEY = f"{PREFIX}:inputlock:{{digest}}"        # held while a freed input's file is deleted
STORAGE_STATS_KEY = f"{PREFIX}:storage"                  # hash: bytes of the blob stores, output sizes
STORAGE_RESERVED_KEY = f"{PREFIX}:storage:reserved"      # hash task_id -> bytes its result may take
STORAGE_SWEEP_KEY = f"{PREFIX}:storage:sweep"            # one storage housekeeping pass at a time
OUTPUT_KEY = f"{PREFIX}:output:{{task_id}}"              # encoded result image
HEARTBEAT_KEY = f"{PREFIX}:worker:{{name}}"              # one JSON record per live worker
HEARTBEAT_PATTERN = f"{PREFIX}:worker:*"
TASK_INDEX_KEY = f"{PREFIX}:tasks"                       # zset task_id -> submitted-at
COMPLETIONS_KEY = f"{PREFIX}:completions"                # zset of finished/failed records
COUNTERS_KEY = f"{PREFIX}:counters"                      # hash: submitted/completed/failed…
HISTOGRAM_KEY = f"{PREFIX}:histogram:{{name}}"           # hash: per-bucket counts, sum, count
LOSSES_KEY = f"{PREFIX}:losses"                          # hash task_id -> worker losses
SAMPLE_KEY = f"{PREFIX}:sample:{{name}}"                 # generated sample images
FENCE_KEY = f"{PREFIX}:fence:{{task_id}}"                 # which execution may finish a task
CLAIM_KEY = f"{PREFIX}:claimed:{{name}}"                  # tasks a worker popped, not yet started
CLAIMANTS_KEY = f"{PREFIX}:claimants"                     # set: workers that may hold claims
REAPER_LOCK_KEY = f"{PREFIX}:reaper:lock"                # one reaper pass fleet-wide at a time
API_REQUESTS_KEY = f"{PREFIX}:api:requests"              # requests served by every API process
THROTTLE_KEY = f"{PREFIX}:api:throttle:{{scope}}:{{ident}}:{{window}}"  # fixed windows, TTL
DONE_KEY = f"{PREFIX}:done:{{task_id}}"                  # list: one token pushed when a task ends
PAUSED_QUEUES_KEY = f"{PREFIX}:paused_queues"            # set of queue names workers skip
DASHBOARD_SESSION_KEY = f"{PREFIX}:dashboard:session:{{key}}"  # web dashboard sessions, TTL

# --- Defaults (tunable by environment) -------------------------------------------------
# An input is freed when the last task that needs it ends; its TTL is only a safety net
# for a task lost in a way nothing could count (a worker killed between RQ's finish and
# the release). A result is kept OUTPUT_TTL, or until DELETE /api/tasks/<id>/result/.
INPUT_TTL = env_int("PIXELFLEET_INPUT_TTL", 24 * 3600)        # s an unreleased input may stay
OUTPUT_TTL = env_int("PIXELFLEET_OUTPUT_TTL", 3600)           # s a result image is kept
RESULT_TTL = env_int("PIXELFLEET_RESULT_TTL", 3600)           # s RQ keeps a finished job (as its result)
FAILURE_TTL = env_int("PIXELFLEET_FAILURE_TTL", 7 * 24 * 3600)
TASK_TIMEOUT = env_int("PIXELFLEET_TASK_TIMEOUT", 120)        # s per task
HEARTBEAT_INTERVAL = env_float("PIXELFLEET_HEARTBEAT_INTERVAL", 2.0)
HEARTBEAT_TTL = HEARTBEAT_INTERVAL * 3                         # gone after 3 missed beats
MAX_WORKER_LOSSES = env_int("PIXELFLEET_MAX_WORKER_LOSSES", 3)
WORKER_MAX_RSS_MB = env_int("PIXELFLEET_WORKER_MAX_RSS_MB", 4096)
FENCE_TTL = RESULT_TTL                                         # s a fence outlives its task (late results come within a timeout)
COMPLETIONS_WINDOW = 15 * 60                                   # s of history for metrics
MAX_WAIT = 60                                                  # s a `?wait=` request may block, at most
DONE_TTL = MAX_WAIT * 2                                        # s an end-of-task token outlives its push
DELIVERED_TTL = env_int("PIXELFLEET_DELIVERED_TTL", 300)       # s a result handed out by submit?wait is kept
MAX_WAITERS = env_int("PIXELFLEET_MAX_WAITERS", 400)           # waiting requests per API process (a
                                                               # Redis connection each); more answer at once
PAUSE_CHECK_S = 1                                              # s a pause takes to reach workers


# --- Storage (workers/storage.py; read at call time so a test or the fleet can set them) --
DEFAULT_STORAGE_URL = "redis://"   # images in the fleet's Redis (`make run` with its embedded Redis: files, workers.fleet)
STORAGE_LOCK_MS = 30_000                                       # a freed input's deletion, at most


def storage_url() -> str:
    """PIXELFLEET_STORAGE_URL: `redis://` (default) or `file:///shared/dir`."""
    return env_str("PIXELFLEET_STORAGE_URL", DEFAULT_STORAGE_URL)


def storage_max_mb() -> int:
    """PIXELFLEET_STORAGE_MAX_MB, or 0 when unset (then the Redis server's maxmemory, else
    a quarter of this machine's memory: workers.storage_budget.budget_bytes)."""
    value = env_int("PIXELFLEET_STORAGE_MAX_MB", 0)
    if value < 0:
        raise SystemExit(f"PIXELFLEET_STORAGE_MAX_MB must be 0 (automatic) or a positive number of MB, got {value}")
    return value


def retry_window_s() -> int:
    """PIXELFLEET_RETRY_WINDOW_S: how long the input of a failed or canceled task stays for a
    retry once no other task needs it (0: freed at once, like a finished task's)."""
    return max(0, env_int("PIXELFLEET_RETRY_WINDOW_S", 600))


def storage_sweep_s() -> int:
    """PIXELFLEET_STORAGE_SWEEP_S: how often (fleet-wide) expired files are deleted and
    result reservations reconciled; the file store's usage drops at each sweep."""
    return max(1, env_int("PIXELFLEET_STORAGE_SWEEP_S", 10))


def storage_high_water() -> float:
    """PIXELFLEET_STORAGE_HIGH_WATER: the fraction of the budget above which submits get 503."""
    value = env_float("PIXELFLEET_STORAGE_HIGH_WATER", 0.75)
    if not 0.05 <= value <= 0.95:
        raise SystemExit(f"PIXELFLEET_STORAGE_HIGH_WATER must be between 0.05 and 0.95, got {value}")
    return value


# --- Serialization ---------------------------------------------------------------------
# Every RQ job, meta and result: strict JSON, never pickle (build RQ objects with
# workers.jobs.queue / fetch_job / fetch_jobs / registry, which pass it).
SERIALIZER = StrictJSONSerializer
