"""Our RQ worker: a thin SimpleWorker subclass (no fork per task).

Why SimpleWorker: forking costs ~10–16 ms per job and numba's OpenMP pool is not
fork-safe (nor is an initialised CUDA context), while kernels compiled and warmed
once in a long-lived process run small tasks at hundreds per second. Isolation we
keep anyway: RQ's SIGALRM death penalty still bounds each task in the main thread,
a memory ceiling (WORKER_MAX_RSS_MB) stops a bloated worker after its task so the
fleet restarts it, and a forced stop hands the running task back instead of failing it.

Hooks overridden, each for one reason:
- job_class / serializer: FleetJob and strict JSON (workers.jobs): nothing read from
  Redis is unpickled, and only the fleet's task function is ever called;
- execute_job: tell the heartbeat which task runs, count it, release its input, check RSS;
- set_state: mirror RQ's idle/busy into the heartbeat record (and skip a repeated HSET);
- dequeue_job_and_maintain_ttl: skip paused queues (workers.queues), "paused" when all are;
- heartbeat / check_for_suspension: our heartbeat thread keeps RQ's keys alive, so
  RQ's loop stops spending 9 of its 20 Redis round trips per task on them;
- request_stop / request_force_stop: "stopping" state; the second signal requeues;
- prepare_execution / prepare_job_execution / handle_job_success / handle_job_failure:
  fencing (workers/fencing.py), and RQ's two start MULTIs as one: the execution takes the
  task's fence when it starts, and finishes it only while it
  still owns it, in one WATCH/MULTI; a superseded execution's result is discarded;
- _finalize_failure: let the forced-stop exception through instead of failing the task,
  and end a superseded execution without recording anything;
- register_birth / teardown: survive a predecessor's stale RQ key and a Redis outage,
  and give back what a predecessor left claimed;
- queue_class: the pop claims the task into the worker's own list (workers/claims.py),
  so a worker killed between pop and start loses nothing.
"""
from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterable, Sequence
from datetime import timedelta

import psutil
import redis
from rq import worker_registration
from rq.exceptions import DeserializationError
from rq.job import Job, JobStatus
from rq.executions import Execution
from rq.job_lifecycle import call_exception_handlers
from rq.timeouts import JobTimeoutException
from rq.queue import Queue
from rq.utils import now
from rq.worker import SimpleWorker
from rq.worker.base import WorkerStatus

from filters.errors import EngineError
from workers import claims, fencing, notify, settings, storage, tasks
from workers.failures import exception_handler
from workers.heartbeat import HeartbeatThread, WorkerHealth
from workers.jobs import FleetJob
from workers.logs import get_logger, log_context, log_event
from workers.queues import PausedQueues
from workers.reaper import LostJob, give_back
from workers.routing import parse_capabilities, queues_for
from workers.runtime import Runtime, current, set_current

log = get_logger("workers.worker")

EXIT_OK = 0            # stopped on request (or burst done)
EXIT_RESTART = 75      # stopped itself for a reason the fleet should restart it for (memory)
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError)
SUSPENSION_CHECK_S = 1.0
# A task's start and end wake the heartbeat thread (so the record names the task, then
# idle, at once) unless the previous wake was less than this long ago: back-to-back tiny
# tasks then cost no extra beats, and the periodic beat catches up within the interval.
START_BEAT_MIN_S = 0.5
EXPECTED_FAILURES = (EngineError, JobTimeoutException, TimeoutError, DeserializationError)
_ATTR_ENDED_IN_COMMIT = "_pixelfleet_ended_in_commit"   # set by _end_writes: how it released the input


class ForcedStop(BaseException):
    """Raised in the main thread by a second stop signal while a task runs.

    A BaseException so task code (which may catch Exception) cannot swallow it.
    """


class _RedisOutageFilter(logging.Filter):
    """RQ logs every reconnect attempt (every few s); our heartbeat logs an outage once."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "could not connect to Redis" in record.getMessage():
            return False
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, REDIS_ERRORS)


class PixelfleetWorker(SimpleWorker):
    """SimpleWorker plus heartbeat state, memory ceiling and requeue-on-forced-stop."""

    log_result_lifespan = False          # one line per event: we log taken/done ourselves
    max_connection_wait_time = 8.0       # reconnect backoff cap (RQ's default is 60 s)

    def __init__(self, queues: Sequence[str], health: WorkerHealth, connection: redis.Redis,
                 heartbeat: HeartbeatThread | None = None,
                 max_rss_mb: int = settings.WORKER_MAX_RSS_MB, **kwargs) -> None:
        super().__init__(list(queues), name=health.runtime.name, connection=connection,
                         exception_handlers=[exception_handler],   # W-core: failure_type, reason
                         default_result_ttl=settings.RESULT_TTL, job_class=FleetJob,
                         serializer=settings.SERIALIZER,
                         queue_class=claims.claiming_queue_class(health.runtime.name), **kwargs)
        self.health = health
        self.heartbeat_thread = heartbeat
        self.max_rss_mb = max_rss_mb
        self.stop_reason: str | None = None
        self.exit_code = EXIT_OK
        self._process = psutil.Process()
        self._task_started = 0.0
        self._start_beat = float("-inf")
        self._suspension_checked = 0.0
        self._outcome: str | None = None   # how the current task ended: committed / fenced
        self._paused = PausedQueues(connection)
        self._prepared_job: str | None = None   # prepare_execution did RQ's job preparation too

    # --- state ------------------------------------------------------------------------
    def _beat(self) -> None:
        if self.heartbeat_thread is not None:
            self.heartbeat_thread.beat_now()

    def set_state(self, state: str, pipeline=None) -> None:
        if pipeline is not None or state != self._state:   # RQ sets "idle" twice per task
            super().set_state(state, pipeline)
        if self.health.state != "stopping":
            self.health.state = "busy" if state == "busy" else "idle"

    def _task_beat(self) -> None:
        """The beat at a task's start and end, at most every START_BEAT_MIN_S: two beats
        (and the reaper's pass after each) per task doubled the Redis round trips of a
        tiny task; in a stream of them the periodic beat names the task within the interval."""
        moment = time.monotonic()
        if moment - self._start_beat >= START_BEAT_MIN_S:
            self._beat()
            self._start_beat = moment

    def _mark_stopping(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
            log_event(log, "stopping", worker=self.name, reason=reason, current_task=self.health.current_task)
        self.health.state = "stopping"
        self._beat()

    def heartbeat(self, timeout: int | None = None, pipeline=None) -> None:
        """RQ calls this three times per loop, three round trips each; our heartbeat thread
        keeps RQ's keys alive instead (see HeartbeatThread.keep_alive). Inside one of
        RQ's own pipelines it costs nothing, so it stays."""
        if pipeline is not None or self.heartbeat_thread is None:
            super().heartbeat(timeout, pipeline)
        else:
            self.last_heartbeat = now()

    def check_for_suspension(self, burst: bool) -> None:
        """`rq suspend` is honoured within SUSPENSION_CHECK_S, not re-read before every
        task (one round trip per task saved)."""
        if time.monotonic() - self._suspension_checked < SUSPENSION_CHECK_S:
            return
        super().check_for_suspension(burst)
        self._suspension_checked = time.monotonic()

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None):
        """RQ's dequeue, from the queues that are not paused (docs/workers.md, "Pausing a queue").

        The paused set is re-read at most every PAUSE_CHECK_S and a blocking wait lasts at
        most that long, so a pause reaches an idle worker within about a second. With every
        queue of this worker paused it takes nothing and says "paused" in its heartbeat.
        """
        listening = self._ordered_queues
        idle_since = time.monotonic()
        wait = None if timeout is None else max(1, min(timeout, settings.PAUSE_CHECK_S))
        try:
            while True:
                paused = self._paused.get()
                self.health.paused_queues = [q.name for q in listening if q.name in paused]
                active = [q for q in listening if q.name not in paused]
                if not active:
                    if timeout is None:                 # burst: nothing it may take now
                        return None
                    if self.health.state not in ("paused", "stopping"):
                        self.health.state = "paused"
                        self._beat()
                    time.sleep(settings.PAUSE_CHECK_S)  # a stop signal raises out of the sleep
                else:
                    self._ordered_queues = active
                    # max_idle_time=wait: RQ gives up after one empty wait instead of looping.
                    result = super().dequeue_job_and_maintain_ttl(wait, wait)
                    self._ordered_queues = listening
                    if result is not None or timeout is None:
                        return result
                if max_idle_time is not None and time.monotonic() - idle_since >= max_idle_time:
                    return None
        finally:
            self._ordered_queues = listening

    def bootstrap(self, *args, **kwargs) -> None:
        super().bootstrap(*args, **kwargs)
        if self.heartbeat_thread is not None:
            self.heartbeat_thread.keep_alive_ttl = self.worker_ttl + 60
            self.heartbeat_thread.keep_alive = (self.key, self.executions_key)
            self.heartbeat_thread.on_keys_lost = self._register_again

    def _register_again(self, conn: redis.Redis) -> None:
        """Redis lost our RQ registration (restart without persistence, FLUSHDB): write it
        again so `rq info` and RQ's own bookkeeping see this worker. Heartbeat thread."""
        if self.heartbeat_thread is None or not self.heartbeat_thread.keep_alive:
            return   # tearing down: the key is gone on purpose
        with conn.pipeline() as pipe:
            pipe.hset(self.key, mapping={**self.serialize(), "state": self.get_state()})
            worker_registration.register(self, pipe)
            pipe.expire(self.key, self.worker_ttl + 60)
            pipe.execute()
        log_event(log, "registered_again", logging.WARNING, worker=self.name, reason="RQ's worker key was gone")

    # --- one task ---------------------------------------------------------------------
    def execute_job(self, job: Job, queue: Queue) -> None:
        self.health.current_task = job.id
        if self.health.state != "stopping":
            self.health.state = "busy"   # the beat below must not say "idle" with a current task
        self._task_beat()
        self._task_started = time.monotonic()
        self._outcome = None
        if job.meta.get("losses"):   # a task back from a lost worker is worth a line
            log_event(log, "taken", logging.WARNING, worker=self.name, task=job.id, queue=queue.name,
                      losses=job.meta["losses"])
        else:   # the heartbeat shows the current task; "done" is the line per task
            log_event(log, "taken", logging.DEBUG, worker=self.name, task=job.id, queue=queue.name)
        try:
            with log_context(task=job.id):
                super().execute_job(job, queue)
        except ForcedStop:
            self._hand_back(job, queue)
            raise SystemExit(EXIT_OK) from None
        finally:
            self.health.last_task = job.id
            self.health.current_task = None
        if self._outcome == fencing.FENCED:   # superseded: not ours to count, log or release
            self._task_beat()
            self._check_memory()
            return
        status = job.get_status(refresh=False)
        released_in_commit = getattr(job, _ATTR_ENDED_IN_COMMIT, None)   # None: the commit did neither
        if released_in_commit is None:
            self._wake_waiters(job, status)
        ok = status == JobStatus.FINISHED
        if ok:
            self.health.done += 1
        else:
            self.health.failed += 1
        self._task_beat()   # idle, without the task, counted: now rather than a period later
        if isinstance(released_in_commit, storage.PendingRelease):   # a file store: the file's part
            try:
                released_in_commit.finish(self.connection, fencing.commit_replies(job))
            except Exception as exc:  # noqa: BLE001 - the input's TTL still frees it
                log_event(log, "input_release_failed", logging.WARNING, worker=self.name, task=job.id, error=str(exc))
        elif not released_in_commit:
            storage.release_task_input(self.connection, job)   # no-op unless the task has ended
        log_event(log, "done" if ok else "failed", logging.INFO if ok else logging.WARNING,
                  worker=self.name, task=job.id, queue=queue.name, status=str(getattr(status, "value", status)),
                  ms=round((time.monotonic() - self._task_started) * 1000, 1),
                  **({"decode": job.meta["decode"]} if job.meta.get("decode") else {}))
        self._check_memory()

    def _wake_waiters(self, job: Job, status: JobStatus | str) -> None:
        """After RQ has persisted the task's end: wake its `?wait=` requests (workers.notify)."""
        value = str(getattr(status, "value", status))
        if value not in notify.ENDED:
            return
        try:
            notify.push_done(self.connection, job.id, value)
        except REDIS_ERRORS as exc:   # the waiters time out and read the status themselves
            log_event(log, "wake_failed", logging.WARNING, worker=self.name, task=job.id, reason=str(exc))

    def _check_memory(self) -> None:
        """After a task: above the ceiling, finish gracefully so the fleet starts a fresh process."""
        try:
            rss_mb = self._process.memory_info().rss / 2**20
        except psutil.Error:
            return
        if rss_mb > self.max_rss_mb:
            self.exit_code = EXIT_RESTART
            self._stop_requested = True
            self._mark_stopping(f"memory ceiling: rss {rss_mb:.0f} MB > {self.max_rss_mb} MB")

    def handle_exception(self, job: Job, *exc_info) -> None:
        """An expected failure (the engine refused the task, or its time ran out) is told by
        the failure_recorded line; RQ's multi-kilobyte traceback line is kept for bugs."""
        if isinstance(exc_info[1], EXPECTED_FAILURES):
            call_exception_handlers(self._exc_handlers, job, *exc_info)
        else:
            super().handle_exception(job, *exc_info)

    def _finalize_failure(self, job, queue, execution, exc_info) -> None:
        if exc_info[0] is not None and issubclass(exc_info[0], ForcedStop):
            raise exc_info[1]   # not the task's failure: execute_job hands it back
        if exc_info[0] is not None and issubclass(exc_info[0], fencing.Superseded):
            self._fenced(job, queue, execution, "failed", f"stopped early: {exc_info[1]}")
            return
        if exc_info[0] is not None and issubclass(exc_info[0], REDIS_ERRORS):
            self._give_back_after_outage(job, queue, execution, exc_info[1])
            return
        super()._finalize_failure(job, queue, execution, exc_info)

    def _give_back_after_outage(self, job: Job, queue: Queue, execution: Execution, exc: BaseException) -> None:
        """Redis went away under the task (it cannot read its input or save its state):
        not the task's failure. Once Redis is back, the task goes to the front of its
        queue, no loss counted (as a forced stop does)."""
        self._outcome = fencing.FENCED   # nothing of this execution is recorded or counted
        fencing.discard_deferred(job)
        self.executions.pop(execution.id, None)
        delay, since = 0.2, time.monotonic()
        while True:
            try:
                outcome = give_back(self.connection, LostJob(job.id, execution.id, queue.name, self.name,
                                                             f"Redis went away mid-task ({exc})"),
                                    count_loss=False, by=self.name)
                break
            except REDIS_ERRORS:
                if time.monotonic() - since > fencing.COMMIT_PATIENCE_S:
                    outcome = "not requeued, Redis unreachable; the reaper will return it"
                    break
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        log_event(log, "task_handed_back", logging.WARNING, worker=self.name, task=job.id, queue=queue.name,
                  outcome=outcome, reason=f"Redis went away mid-task: {exc}",
                  waited_s=round(time.monotonic() - since, 1))

    # --- fencing ----------------------------------------------------------------------
    def prepare_execution(self, job: Job) -> Execution:
        """RQ's prepare_execution and its prepare_job_execution in one MULTI, in which this
        execution also takes the task's fence and drops it from the claim list.

        RQ writes the two (execution record; then started status and heartbeats) in two
        round trips back to back; one is enough, and each write round trip is an fsync
        under `appendfsync always`. RQ's LREM of the intermediate queue is left out: our
        pop claims into the worker's own list (workers/claims.py), never into that one.
        """
        heartbeat_ttl = self.get_heartbeat_ttl(job)
        with self.connection.pipeline() as pipe:
            execution = Execution.create(job, heartbeat_ttl, pipeline=pipe, worker_name=self.name)
            fencing.take(pipe, job.id, execution.id)
            claims.forget(pipe, self.name, job.id)
            self.executions[execution.id] = execution
            self.set_state(WorkerStatus.BUSY, pipeline=pipe)
            self.heartbeat(heartbeat_ttl, pipeline=pipe)
            job.prepare_for_execution(self.name, pipeline=pipe)   # status started, last_heartbeat
            pipe.persist(job.key)
            tasks.queue_started_meta(job, self.name, pipe)         # worker, start, step 1 of N
            pipe.execute()
        fencing.bind(job, execution.id)
        self._prepared_job = job.id
        return execution

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        """Done by prepare_execution already, in its MULTI; RQ's own for any other caller."""
        if self._prepared_job == job.id:
            self._prepared_job = None
            return
        super().prepare_job_execution(job, remove_from_intermediate_queue)

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry, execution: Execution) -> None:
        """RQ's success writes (status, result, counts, execution cleanup) and the task's
        deferred writes (output, statistics), committed only while we own the task.
        Our tasks have no dependents and no repeats; RQ's handling of those is not needed."""
        result_ttl = job.get_result_ttl(self.default_result_ttl)

        def writes(pipe) -> None:
            self.increment_successful_job_count(pipeline=pipe)
            self.increment_total_working_time(job.ended_at - job.started_at, pipe)
            if result_ttl != 0:
                job._handle_success(result_ttl, pipeline=pipe, worker_name=self.name, execution_id=execution.id,
                                    execution_started_at=execution.created_at, execution_ended_at=job.ended_at)
            job.cleanup(result_ttl, pipeline=pipe, remove_from_queue=False)
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            self._end_writes(job, "finished", pipe)

        self._commit(job, queue, execution, "finished", writes)

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry=None, exc_string: str = "",
                           execution: Execution | None = None) -> None:
        """RQ's failure writes and the failure statistics, committed only while we own the task.
        Without an execution (RQ's own clean-ups) or with RQ retries/stops, RQ's path."""
        if execution is None or fencing.execution_of(job) != execution.id or job.should_retry \
                or self._stopped_job_id == job.id:
            super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)
            return

        def writes(pipe) -> None:
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            if not self.disable_default_exception_handler:
                job._handle_failure(exc_string, pipeline=pipe, worker_name=self.name, execution_id=execution.id,
                                    execution_started_at=execution.created_at, execution_ended_at=job.ended_at)
            self.increment_failed_job_count(pipe)
            if job.started_at and job.ended_at:
                self.increment_total_working_time(job.ended_at - job.started_at, pipe)
            self._end_writes(job, "failed", pipe)

        self._commit(job, queue, execution, "failed", writes)

    def _end_writes(self, job: Job, status: str, pipe) -> None:
        """In the commit that ends the task, after its status: the `?wait` wake-up
        (workers.notify) and the input's release — two round trips less per task than
        after it, and atomic with the end (a file store deletes a freed file after it,
        storage.PendingRelease). Marked on the job so execute_job does not do them again."""
        notify.push_done(self.connection, job.id, status, pipeline=pipe)
        setattr(job, _ATTR_ENDED_IN_COMMIT, storage.queue_task_input_release(pipe, job))

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """RQ stamps the end and a last heartbeat, the heartbeat in a round trip of its own;
        here both stay on the job object and the commit that follows (success or failure,
        which retries while Redis is away) saves them with the job hash: one round trip
        less per task, and an outage cannot turn a finished task into a failure."""
        job.ended_at = now()
        job.last_heartbeat = job.ended_at

    def _commit(self, job: Job, queue: Queue, execution: Execution, status: str, writes) -> None:
        def writes_and_idle(pipe) -> None:
            writes(pipe)
            pipe.hset(self.key, "state", WorkerStatus.IDLE)   # RQ's HSET after the task, one trip less

        outcome = fencing.commit(self.connection, job, execution.id, status, writes_and_idle, worker=self.name)
        if outcome == fencing.FENCED:
            self._fenced(job, queue, execution, status, "another execution owns the task")
        else:
            self._outcome = outcome
            self._state = WorkerStatus.IDLE   # so set_state(IDLE) after the task writes nothing

    def _fenced(self, job: Job, queue: Queue, execution: Execution, status: str, why: str) -> None:
        """A superseded execution ends: nothing of it is written, nothing counted."""
        self._outcome = fencing.FENCED
        fencing.discard_deferred(job)
        self.executions.pop(execution.id, None)
        log_event(log, "fenced", logging.WARNING, worker=self.name, task=job.id, queue=queue.name,
                  execution=execution.id, discarded=status, fence=fencing.current_fence(self.connection, job.id),
                  reason=why, ms=round((time.monotonic() - self._task_started) * 1000, 1))

    def _hand_back(self, job: Job, queue: Queue) -> None:
        """Forced stop mid-task: the task goes back to the front of its queue, no loss counted."""
        execution = next(iter(self.executions.values()), None)
        try:
            if execution is not None:
                outcome = give_back(self.connection,
                                    LostJob(job.id, execution.id, queue.name, self.name, "worker forced to stop"),
                                    count_loss=False, by=self.name)
            else:   # claimed but not yet started: back to the front of its queue
                claims.rescue(self.connection, self.name)
                outcome = "requeued"
        except REDIS_ERRORS as exc:
            outcome = f"not requeued, Redis unreachable ({exc}); the reaper will return it"
        log_event(log, "task_handed_back", logging.WARNING, worker=self.name, task=job.id,
                  queue=queue.name, outcome=outcome)

    # --- signals ----------------------------------------------------------------------
    def request_stop(self, signum, frame) -> None:
        self._mark_stopping(f"signal {signal.Signals(signum).name}: finishing the current task, then exiting")
        super().request_stop(signum, frame)

    def request_force_stop(self, signum, frame) -> None:
        if self._shutdown_requested_date and now() - self._shutdown_requested_date < timedelta(seconds=1):
            return   # the same Ctrl-C delivered twice (terminal + parent): not a second request
        log_event(log, "forced_stop", logging.WARNING, worker=self.name, signal=signal.Signals(signum).name,
                  current_task=self.health.current_task)
        if self.health.current_task is not None:
            raise ForcedStop()
        raise SystemExit(EXIT_OK)

    # --- registration and outages -----------------------------------------------------
    def register_birth(self) -> None:
        """A predecessor under our name (SIGKILLed, or lost in a Redis outage) left its RQ
        key behind; __main__ already made sure no live twin uses this name, so clear it."""
        key = self.key
        if self.connection.exists(key) and not self.connection.hexists(key, "death"):
            with self.connection.pipeline() as pipe:
                worker_registration.unregister(self, pipe)
                pipe.delete(key)
                pipe.execute()
            log_event(log, "stale_registration_cleared", worker=self.name, key=key)
        super().register_birth()
        moved = claims.register(self.connection, self.name)
        if moved:
            log_event(log, "claims_rescued", logging.WARNING, worker=self.name, tasks=",".join(moved),
                      reason="a predecessor under this name popped them and never started them")

    def teardown(self) -> None:
        if self.heartbeat_thread is not None:
            self.heartbeat_thread.keep_alive = ()   # let the dead worker's keys expire
        try:
            self.register_death()
            claims.rescue(self.connection, self.name)   # nothing normally; and leave the claimants
        except REDIS_ERRORS:
            pass   # its key expires on its own; the reaper rescues its claims
        try:
            self.unsubscribe()
        except Exception:   # noqa: BLE001 — a broken pubsub socket must not block the exit
            pass

    def run(self, burst: bool = False, max_jobs: int | None = None) -> int:
        """RQ's work loop, re-entered after a Redis outage; returns the process exit code.

        RQ's loop retries a failed dequeue itself, but an outage elsewhere (maintenance,
        finishing a task) ends work(); we wait for Redis with capped backoff and go on.
        """
        rq_logger = logging.getLogger("rq.worker")
        rq_logger.addFilter(_RedisOutageFilter())
        rq_logger.setLevel(logging.WARNING)   # our own taken/done lines replace RQ's four per task
        delay = 0.5
        while True:
            try:
                self.work(burst=burst, max_jobs=max_jobs, logging_level=None)
            except REDIS_ERRORS:
                pass
            if burst or max_jobs is not None or self._stop_requested or self.stop_reason:
                return self.exit_code
            # work() ended without a stop request: Redis went away under it.
            while True:
                time.sleep(delay)
                delay = min(delay * 2, self.max_connection_wait_time)
                try:
                    self.connection.ping()
                    break
                except REDIS_ERRORS:
                    continue
            delay = 0.5
            self._executions = []
            log_event(log, "resuming", worker=self.name, reason="redis reachable again")


def run_burst(conn: redis.Redis, capabilities: Iterable[str] | str = ("io", "cpu"),
              name: str | None = None) -> int:
    """Run every queued task our in-process worker can serve, then return how many it ran.

    For tests and scripts (the API tests use it): same class and hooks as a fleet worker,
    no heartbeat thread, CPU backend. Must be called from the main thread (RQ installs
    signal handlers and uses SIGALRM for time limits).
    """
    caps = parse_capabilities(capabilities if isinstance(capabilities, str) else ",".join(capabilities))
    caps = caps - {"gpu"}
    runtime = Runtime(name=name or f"burst-{psutil.Process().pid}-{int(time.time() * 1000) % 100000}",
                      capabilities=caps)
    previous = current()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    set_current(runtime)
    health = WorkerHealth(runtime=runtime, state="idle")
    try:
        worker = PixelfleetWorker(queues_for(caps), health=health, connection=conn)
        worker.work(burst=True, logging_level=None)
    finally:
        set_current(previous)
        for sig, handler in handlers.items():   # RQ installed its own; give the caller's back
            signal.signal(sig, handler)
    return health.done + health.failed
