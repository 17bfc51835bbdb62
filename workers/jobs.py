"""RQ objects made one way: every queue, job fetch and registry with the fleet's serializer.

Why one module: RQ falls back to pickle wherever a Queue, Job or registry is built
without `serializer=`, and runs whatever importable callable a job names. Everything in
this repository that touches RQ builds its objects here, so there is no second way:

- queue(conn, name) / fetch_job(conn, id) / fetch_jobs(conn, ids) / registry(...)
  pass workers.settings.SERIALIZER (strict JSON) and FleetJob.
- FleetJob reads a job hash as untrusted input: a record it cannot parse (pickled or
  garbage meta, result, fields) is kept as `job.unreadable` reasons instead of raising
  or unpickling, and its `func` refuses to resolve anything but the fleet's task
  function, so a job naming `os.system` fails as job_failure without being called.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import redis
from rq.exceptions import DeserializationError, NoSuchJobError
from rq import job as rq_job
from rq.job import Job
from rq.queue import Queue
from rq.registry import (BaseRegistry, CanceledJobRegistry, FailedJobRegistry, FinishedJobRegistry,
                         StartedJobRegistry)

from filters.errors import EngineError
from workers import settings

log = logging.getLogger("workers.jobs")

TEST_TASKS_ENV = "PIXELFLEET_TEST_TASK_FUNCTIONS"   # tests only: extra "tests.*" functions a worker may run
MAX_REASON_CHARS = 300

# What our own code reads from job.meta, and the JSON type each must have. A value of
# another type (edited in Redis) is dropped and noted, so readers never meet a surprise.
_NUMBER = (int, float)
META_TYPES: dict[str, tuple[type, ...]] = {
    "losses": (int,), "submitted_at": _NUMBER, "started_at": _NUMBER,
    "capabilities": (list,), "progress": (dict,), "history": (list,),
    "worker": (str,), "device": (str,), "source": (str,), "failure_type": (str,),
    "failure_reason": (str,), "explanation": (str,),
}


class UntrustedTask(EngineError):
    """The job in Redis is not one the API enqueued: it names other code, or cannot be read."""

    code = "untrusted_task"
    http_status = 422


def allowed_functions() -> frozenset[str]:
    """The callables a worker may run: the fleet's task function (and, for the test
    suite only, "tests.*" helpers named in the worker's own environment)."""
    from workers.routing import TASK_FUNCTION

    extra = {name.strip() for name in settings.env_str(TEST_TASKS_ENV, "").split(",")}
    return frozenset({TASK_FUNCTION} | {n for n in extra if n.startswith("tests.")})


def _short(text: object) -> str:
    return str(text)[:MAX_REASON_CHARS]


def _check_meta(meta: Any) -> tuple[dict[str, Any], list[str]]:
    """(meta fit for our readers, what was wrong with it)."""
    if not isinstance(meta, dict):
        return {}, [f"meta is a JSON {type(meta).__name__}, not an object"]
    problems = []
    clean = dict(meta)
    for key, types in META_TYPES.items():
        value = clean.get(key)
        if value is None:
            continue
        if not isinstance(value, types) or isinstance(value, bool):
            problems.append(f"meta field {key!r} is a {type(value).__name__}")
            clean.pop(key)
    if isinstance(clean.get("capabilities"), list) and not all(isinstance(c, str) for c in clean["capabilities"]):
        problems.append("meta field 'capabilities' holds non-strings")
        clean.pop("capabilities")
    return clean, problems


def _parse_utc(value: bytes | str) -> datetime:
    """rq.utils.str_to_date, without strptime: a status read restores a job hash with up to
    five timestamps, and strptime was a twentieth of a status poll's CPU. Same results for
    what RQ writes (`2026-12-02T16:00:51.010619Z`, or the old form without fraction),
    aware UTC datetimes; ValueError for anything that is not a timestamp."""
    text = value.decode() if isinstance(value, bytes) else value
    if not text or not text.endswith("Z") or "T" not in text:
        raise ValueError(f"not an RQ timestamp: {text!r:.40}")
    return datetime.fromisoformat(text[:-1]).replace(tzinfo=timezone.utc)


rq_job.str_to_date = _parse_utc   # the name rq.job.Job.restore calls (rq.job imports it from rq.utils)


class FleetJob(Job):
    """An RQ Job that treats its Redis hash as untrusted input (see module docstring)."""

    unreadable: list[str]

    def restore(self, raw_data: Any) -> None:
        self.unreadable = []
        try:
            super().restore(raw_data)
        except NoSuchJobError:
            raise
        except Exception as exc:   # noqa: BLE001 — a torn or forged field: describe, never crash
            self.unreadable.append(_short(f"job record: {type(exc).__name__}: {exc}"))
        if self._unreadable_meta is not None:
            from workers.serializer import describe

            self.unreadable.append(f"meta: {describe(bytes(self._unreadable_meta))}")
            self._unreadable_meta = None
            self.meta = {}
        self.meta, problems = _check_meta(self.meta)
        self.unreadable.extend(problems)

    def get_meta(self, refresh: bool = True) -> dict:
        if refresh:
            raw = self.connection.hget(self.key, "meta")
            try:
                meta = self.serializer.loads(raw) if raw else {}
            except Exception as exc:   # noqa: BLE001
                self.unreadable = [*getattr(self, "unreadable", []), _short(f"meta: {exc}")]
                meta = {}
            self.meta, problems = _check_meta(meta)
            self.unreadable = [*getattr(self, "unreadable", []), *problems]
        return self.meta

    def latest_result(self, timeout: int = 0) -> Any:
        """RQ's latest Result, or None when it cannot be read (the reason joins `unreadable`)."""
        try:
            return super().latest_result(timeout)
        except Exception as exc:   # noqa: BLE001 — pickled or garbage return value
            cause = exc.__cause__ or exc
            self.unreadable = [*getattr(self, "unreadable", []), _short(f"result: {cause}")]
            return None

    def return_value(self, refresh: bool = False) -> Any:
        if refresh:
            self._cached_result = None
        if not self._cached_result:
            self._cached_result = self.latest_result()
        result = self._cached_result
        return result.return_value if result is not None and result.type == result.Type.SUCCESSFUL else None

    def refusal(self) -> str | None:
        """Why a worker must not run this job, or None when it is the fleet's own task."""
        if getattr(self, "unreadable", None):
            return "the task's record in Redis is unreadable: " + "; ".join(self.unreadable)
        try:
            func_name = self.func_name
            args, kwargs, instance = self.args, self.kwargs, self._instance
        except DeserializationError as exc:
            return _short(f"the task's data in Redis is unreadable: {exc.__cause__ or exc}")
        if not isinstance(func_name, str) or func_name not in allowed_functions():
            from workers.routing import TASK_FUNCTION

            return _short(f"the task names {func_name!r}; workers run only {TASK_FUNCTION}")
        if instance is not None:
            return "the task names a method of a stored object; workers run only module functions"
        if not isinstance(args, (list, tuple)) or not isinstance(kwargs, dict):
            return "the task's arguments are not a list and an object"
        names = [n for n in (self._success_callback_name, self._failure_callback_name,
                             self._stopped_callback_name) if n]
        if names:
            return _short(f"the task asks for callbacks {names!r}; the fleet runs none")
        return None

    @property
    def func(self):   # type: ignore[override]
        """The task function, resolved only after refusal() found nothing wrong."""
        problem = self.refusal()
        if problem:
            raise UntrustedTask(problem + "; it was not run")
        return super().func

    # Callbacks and webhooks are named in the job hash: the fleet uses none, so none run.
    @property
    def success_callback(self):   # type: ignore[override]
        return None

    @property
    def failure_callback(self):   # type: ignore[override]
        return None

    @property
    def stopped_callback(self):   # type: ignore[override]
        return None

    def send_webhooks(self, *args: Any, **kwargs: Any) -> None:
        return None


def queue(conn: redis.Redis, name: str) -> Queue:
    """An RQ queue of the fleet: JSON serializer, FleetJob."""
    return Queue(name, connection=conn, job_class=FleetJob, serializer=settings.SERIALIZER)


def fetch_job(conn: redis.Redis, job_id: str) -> FleetJob:
    """Job.fetch with the fleet's serializer; raises NoSuchJobError like RQ's."""
    return FleetJob.fetch(job_id, connection=conn, serializer=settings.SERIALIZER)


def fetch_jobs(conn: redis.Redis, job_ids: Iterable[str]) -> list[FleetJob | None]:
    """Job.fetch_many with the fleet's serializer (None for a job that is gone)."""
    return FleetJob.fetch_many(list(job_ids), connection=conn, serializer=settings.SERIALIZER)


def registry(kind: type[BaseRegistry], conn: redis.Redis, queue_name: str) -> BaseRegistry:
    """One of RQ's registries of a queue (StartedJobRegistry, FailedJobRegistry, …),
    reading jobs with the fleet's serializer."""
    return kind(queue_name, connection=conn, job_class=FleetJob, serializer=settings.SERIALIZER)


__all__ = ["CanceledJobRegistry", "FailedJobRegistry", "FinishedJobRegistry", "FleetJob", "StartedJobRegistry",
           "UntrustedTask", "allowed_functions", "fetch_job", "fetch_jobs", "queue", "registry"]
