"""The fast reaper: gives the tasks of dead (or restarted) workers back to their queues.

Why: RQ notices an abandoned job only when its started-registry score expires
(task timeout + 60 s) and a maintenance pass runs (every 10 min). Our heartbeat
records expire within HEARTBEAT_TTL, so a started job whose worker has no record —
or whose worker is alive but says it runs something else (it was restarted under
the same name, or Redis lost its completion) — is lost *now*. Each lost job goes to
the FRONT of its queue with one more loss counted; at MAX_WORKER_LOSSES it fails as
worker_failure (workers.failures.fail_lost_job), so a poison image that kills every
worker that touches it cannot take the fleet down.

Every worker's heartbeat thread calls reap_once() each beat; a SET NX PX lock lets
one pass run per HEARTBEAT_INTERVAL fleet-wide. Each requeue first revokes the lost
execution's fence (workers/fencing.py: if it comes back, its result is discarded), then
claims its started-registry entry with ZREM, so a job is never given back twice.

RQ 3.0 layout read here: `rq:wip:<queue>` is a zset of "<job_id>:<execution_id>";
`rq:execution:<job_id>:<execution_id>` is a hash with worker_name and created_at;
`rq:executions:<job_id>` (zset) and `rq:worker:<name>:executions` (set) index them.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import redis
from rq.exceptions import NoSuchJobError
from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE, Execution, ExecutionRegistry
from rq.job import Job, JobStatus
from rq.utils import as_text, parse_composite_key

from workers import claims, fencing, jobs, settings
from workers.jobs import StartedJobRegistry
from workers.logs import get_logger, log_event
from workers.registry import read_workers
from workers.routing import all_queue_names

log = get_logger("workers.reaper")

REAPER_LOCK_KEY = settings.REAPER_LOCK_KEY
# A started job is not "unclaimed" before its worker has had time to say it runs it.
CLAIM_GRACE_S = 2 * settings.HEARTBEAT_INTERVAL


@dataclass(frozen=True)
class LostJob:
    job_id: str
    execution_id: str
    queue: str
    worker: str
    reason: str


def find_lost_jobs(conn: redis.Redis, now: float | None = None) -> list[LostJob]:
    """Started jobs in any Pixelfleet queue that no live worker is running.

    Three round trips whatever the fleet size: registries, execution hashes, heartbeats.
    """
    now = time.time() if now is None else now
    queues = all_queue_names()
    with conn.pipeline(transaction=False) as pipe:
        for name in queues:
            pipe.zrange(jobs.registry(StartedJobRegistry, conn, name).key, 0, -1)
        entries = [(name, parse_composite_key(as_text(member)))
                   for name, members in zip(queues, pipe.execute()) for member in members]
    if not entries:
        return []
    with conn.pipeline(transaction=False) as pipe:
        for _, (job_id, execution_id) in entries:
            pipe.hmget(Execution(execution_id, job_id, conn).key, "worker_name", "created_at")
            pipe.hget(Job.key_for(job_id), "worker_name")
        raw = pipe.execute()
    alive = {str(rec["name"]): rec for rec in read_workers(conn)}
    lost = []
    for i, (queue, (job_id, execution_id)) in enumerate(entries):
        (exec_worker, created_at), job_worker = raw[2 * i], raw[2 * i + 1]
        worker = as_text(exec_worker or job_worker or b"") or "?"
        record = alive.get(worker)
        if record is None:
            reason = f"worker {worker} stopped heartbeating (dead or unreachable) while running the task"
        elif record.get("current_task") == job_id:
            continue
        elif created_at is not None and now - float(created_at) < CLAIM_GRACE_S:
            continue   # just dequeued: its heartbeat will name it within a beat
        else:
            reason = (f"worker {worker} is alive but no longer running the task "
                      f"(restarted, or its completion was lost with Redis)")
        lost.append(LostJob(job_id, execution_id, queue, worker, reason))
    return lost


def _forget_execution(pipe: redis.client.Pipeline, job_id: str, execution_id: str, worker: str) -> None:
    execution = Execution(execution_id, job_id, pipe)
    pipe.delete(execution.key)
    pipe.zrem(ExecutionRegistry(job_id, pipe).key, execution_id)
    pipe.srem(WORKER_EXECUTIONS_KEY_TEMPLATE.format(worker), execution.composite_key)


def give_back(conn: redis.Redis, lost: LostJob, count_loss: bool = True, by: str | None = None) -> str | None:
    """Return one started job to the front of its queue; returns "requeued", "failed" or None.

    `count_loss=False` is for a worker handing back its own task on a forced stop:
    that is the operator's doing, not the task's, so it is not held against it.
    `by` names the worker doing it, for the log line.
    """
    registry = jobs.registry(StartedJobRegistry, conn, lost.queue)
    composite = f"{lost.job_id}:{lost.execution_id}"
    if not fencing.revoke(conn, lost.job_id, lost.execution_id):
        # The execution finished (or was given back by another pass) after we looked: its
        # commit cleans its own entry; a leftover entry goes, nothing is requeued.
        conn.zrem(registry.key, composite)
        return None
    # From here the lost execution can no longer finish the task (workers/fencing.py).
    if not conn.zrem(registry.key, composite):
        return None   # another pass (or the worker itself) already handled it
    with conn.pipeline() as pipe:
        _forget_execution(pipe, lost.job_id, lost.execution_id, lost.worker)
        pipe.execute()
    try:
        job = jobs.fetch_job(conn, lost.job_id)
        status = job.get_status(refresh=False)
    except NoSuchJobError:
        return None
    if status in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.STOPPED):
        return None   # it ended after all (or an operator ended it); only the registry entry was stale
    # Otherwise back it goes — "queued" too: an execution whose start failed half-way
    # (Redis went away between its execution record and RQ's "started") still owned it.
    losses = int(job.meta.get("losses", 0))
    if count_loss:
        with conn.pipeline() as pipe:
            pipe.hincrby(settings.LOSSES_KEY, job.id, 1)
            pipe.expire(settings.LOSSES_KEY, settings.FAILURE_TTL)
            losses = max(losses + 1, int(pipe.execute()[0]))
    job.meta["losses"] = losses
    if count_loss and losses >= settings.MAX_WORKER_LOSSES:
        from workers.failures import fail_lost_job

        reason = f"{lost.reason}; lost {losses} times (limit {settings.MAX_WORKER_LOSSES}), not retried"
        job.save_meta()
        fail_lost_job(conn, job, reason)
        log_event(log, "task_failed_lost", logging.WARNING, worker=by, task=job.id, queue=lost.queue,
                  lost_worker=lost.worker, losses=losses, reason=reason)
        return "failed"
    jobs.queue(conn, lost.queue).enqueue_job(job, at_front=True)   # saves meta too
    log_event(log, "task_requeued", logging.WARNING, worker=by, task=job.id, queue=lost.queue, lost_worker=lost.worker,
              losses=losses, counted=count_loss, reason=lost.reason)
    return "requeued"


def reap_once(conn: redis.Redis, interval: float = settings.HEARTBEAT_INTERVAL,
              by: str | None = None) -> list[tuple[LostJob, str]]:
    """One fleet-wide pass, if no other worker ran one in the last `interval` seconds."""
    if not conn.set(REAPER_LOCK_KEY, uuid.uuid4().hex, nx=True, px=max(int(interval * 1000), 100)):
        return []
    done = []
    for lost in find_lost_jobs(conn):
        outcome = give_back(conn, lost, by=by)
        if outcome:
            done.append((lost, outcome))
    rescue_claims(conn, by=by)
    return done


def rescue_claims(conn: redis.Redis, by: str | None = None) -> list[str]:
    """Tasks popped by workers that have no heartbeat any more (killed between popping a
    task and starting it): back to the front of their queues (workers/claims.py)."""
    waiting = claims.claimants(conn)
    if not waiting:
        return []
    alive = {str(rec["name"]) for rec in read_workers(conn)}
    moved = []
    for worker in sorted(waiting - alive):
        for task in claims.rescue(conn, worker):
            moved.append(task)
            log_event(log, "task_requeued", logging.WARNING, worker=by, task=task, lost_worker=worker, losses=0,
                      counted=False, reason=f"worker {worker} popped the task and stopped heartbeating before starting it")
    return moved
