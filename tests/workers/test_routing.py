"""Capability routing with the real redis-server and real in-process RQ workers.

The property under test: a worker only ever takes tasks it can run, and every task is
taken by some worker whose capabilities cover it.
"""
from __future__ import annotations

import io
from itertools import combinations

import pytest
import redis
from PIL import Image
from rq import SimpleWorker
from rq.job import JobStatus

from filters.errors import ValidationError
from workers import jobs, routing, settings, storage
from workers.jobs import fetch_job
from workers.settings import SERIALIZER
from workers.failures import exception_handler

ALL_SETS = [frozenset(c) for n in (1, 2, 3) for c in combinations(settings.CAPABILITIES, n)]

# One task per capability set a task can need (every step has a class, so {gpu} alone
# cannot occur): io-only, cpu-only, both, and each with device=gpu.
TASK_KINDS = {
    frozenset({"io"}): ([{"filter": "brightness", "params": {"factor": 1.1}}], "auto"),
    frozenset({"cpu"}): ([{"filter": "edges", "params": {}}], "auto"),
    frozenset({"cpu", "io"}): ([{"filter": "brightness", "params": {}}, {"filter": "edges", "params": {}}], "cpu"),
    frozenset({"gpu", "io"}): ([{"filter": "brightness", "params": {}}], "gpu"),
    frozenset({"cpu", "gpu"}): ([{"filter": "edges", "params": {}}], "gpu"),
    frozenset({"cpu", "gpu", "io"}): ([{"filter": "grayscale"}, {"filter": "edges"}], "gpu"),
}


def png(width: int = 16, height: int = 16, colour=(200, 80, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def burst(conn, caps) -> None:
    """An in-process RQ SimpleWorker over the queues `caps` serve, with our failure handler."""
    SimpleWorker(routing.queues_for(caps), connection=conn, serializer=SERIALIZER,
                 exception_handlers=[exception_handler]).work(burst=True, logging_level="WARNING")


# --- names and listening order ----------------------------------------------------------
def test_queue_name_is_prefix_plus_sorted_caps():
    assert routing.queue_name({"io", "cpu"}) == "pixelfleet:cpu+io"
    assert routing.queue_name(["gpu", "io", "cpu"]) == "pixelfleet:cpu+gpu+io"
    assert routing.capabilities_of_queue("pixelfleet:cpu+io") == {"cpu", "io"}
    with pytest.raises(ValueError):
        routing.queue_name(set())


def test_parse_capabilities_expands_all_and_names_typos():
    assert routing.parse_capabilities("all") == frozenset(settings.CAPABILITIES)
    assert routing.parse_capabilities(" io, CPU ") == {"io", "cpu"}
    assert routing.parse_capabilities(["gpu"]) == {"gpu"}
    with pytest.raises(ValueError, match="unknown capability 'cuda'"):
        routing.parse_capabilities("io,cuda")
    with pytest.raises(ValueError, match="no capabilities"):
        routing.parse_capabilities(" , ")


@pytest.mark.parametrize("worker_caps", ALL_SETS, ids=lambda s: "+".join(sorted(s)))
def test_worker_listens_exactly_on_the_queues_of_its_subsets(worker_caps):
    queues = routing.queues_for(worker_caps)
    expected = {routing.queue_name(s) for s in ALL_SETS if s <= worker_caps}
    assert set(queues) == expected and len(queues) == len(expected)
    # Most demanding first: the full set leads, sizes never increase along the list.
    sizes = [len(routing.capabilities_of_queue(q)) for q in queues]
    assert queues[0] == routing.queue_name(worker_caps)
    assert sizes == sorted(sizes, reverse=True)


def test_listening_order_puts_rare_capabilities_first():
    assert routing.queues_for("all") == [
        "pixelfleet:cpu+gpu+io", "pixelfleet:cpu+gpu", "pixelfleet:gpu+io", "pixelfleet:cpu+io",
        "pixelfleet:gpu", "pixelfleet:cpu", "pixelfleet:io",
    ]


# --- enqueue ---------------------------------------------------------------------------
def test_enqueue_task_routes_indexes_counts_and_describes(redis_conn):
    digest = storage.store_input(redis_conn, png())
    steps = [{"filter": "blur", "params": {"radius": 1.5}}, {"filter": "sharpen"}]
    task_id = routing.enqueue_task(redis_conn, digest, steps, {"format": "webp", "quality": 70, "source": "test"})
    job = fetch_job(redis_conn, task_id)
    assert job.origin == "pixelfleet:cpu+io"
    assert job.get_status() == JobStatus.QUEUED
    assert jobs.queue(redis_conn, "pixelfleet:cpu+io").job_ids == [task_id]
    assert job.func_name == "workers.tasks.process_image"
    payload = job.args[0]
    assert payload["digest"] == digest and payload["format"] == "webp" and payload["quality"] == 70
    assert payload["steps"][1] == {"filter": "sharpen", "params": {"amount": 1.0, "radius": 1.0}}
    assert job.meta["capabilities"] == ["cpu", "io"] and job.meta["source"] == "test"
    assert job.meta["device"] == "auto" and job.meta["submitted_at"] > 0
    assert job.timeout == settings.TASK_TIMEOUT
    assert job.result_ttl == settings.RESULT_TTL and job.failure_ttl == settings.FAILURE_TTL
    assert "blur(radius=1.5)" in job.description and "sharpen(" in job.description
    assert redis_conn.zscore(settings.TASK_INDEX_KEY, task_id) is not None
    assert int(redis_conn.hget(settings.COUNTERS_KEY, "submitted")) == 1


def test_enqueue_honours_timeout_and_gpu_device(redis_conn):
    digest = storage.store_input(redis_conn, png())
    task_id = routing.enqueue_task(redis_conn, digest, [{"filter": "grayscale"}], {"device": "gpu", "timeout": 7})
    job = fetch_job(redis_conn, task_id)
    assert job.origin == "pixelfleet:gpu+io" and job.timeout == 7


@pytest.mark.parametrize("options,named", [
    ({"format": "bmp"}, "format"), ({"quality": 0}, "quality"), ({"quality": "high"}, "quality"),
    ({"device": "tpu"}, "device"), ({"timeout": 0}, "timeout"), ({"timeout": 10**6}, "timeout"),
])
def test_bad_options_are_refused_and_nothing_is_enqueued(redis_conn, options, named):
    digest = storage.store_input(redis_conn, png())
    with pytest.raises(routing.InvalidOptions) as info:
        routing.enqueue_task(redis_conn, digest, [{"filter": "grayscale"}], options)
    assert info.value.message.startswith(named) and info.value.http_status == 400
    assert redis_conn.zcard(settings.TASK_INDEX_KEY) == 0
    assert redis_conn.hget(settings.COUNTERS_KEY, "submitted") is None


def test_invalid_steps_are_refused_with_the_registry_message(redis_conn):
    digest = storage.store_input(redis_conn, png())
    with pytest.raises(ValidationError, match="blur.radius"):
        routing.enqueue_task(redis_conn, digest, [{"filter": "blur", "params": {"radius": 80}}], {})
    with pytest.raises(ValidationError):
        routing.enqueue_task(redis_conn, digest, [], {})
    assert redis_conn.zcard(settings.TASK_INDEX_KEY) == 0


def test_enqueue_without_stored_input_is_refused(redis_conn):
    missing = storage.digest_of(b"never stored")
    with pytest.raises(storage.InputMissing, match="not stored"):
        routing.enqueue_task(redis_conn, missing, [{"filter": "grayscale"}], {})
    assert redis_conn.zcard(settings.TASK_INDEX_KEY) == 0
    assert not redis_conn.exists(storage.refs_key(missing))       # no reference left behind


# --- real workers ----------------------------------------------------------------------
def test_cpu_task_is_never_taken_by_an_io_worker_and_a_cpu_worker_takes_it(redis_conn):
    digest = storage.store_input(redis_conn, png())
    task_id = routing.enqueue_task(redis_conn, digest, [{"filter": "sharpen"}], {})
    burst(redis_conn, {"io"})
    job = fetch_job(redis_conn, task_id)
    assert job.get_status() == JobStatus.QUEUED and job.worker_name in (None, "")
    burst(redis_conn, {"cpu"})
    assert job.get_status() == JobStatus.FINISHED


@pytest.mark.parametrize("worker_caps", ALL_SETS, ids=lambda s: "+".join(sorted(s)))
def test_every_capability_combination_takes_exactly_what_it_can_run(redis_conn, worker_caps):
    digest = storage.store_input(redis_conn, png(8, 8))
    ids = {need: routing.enqueue_task(redis_conn, digest, steps, {"device": device})
           for need, (steps, device) in TASK_KINDS.items()}
    burst(redis_conn, worker_caps)
    for need, task_id in ids.items():
        status = fetch_job(redis_conn, task_id).get_status()
        if need <= worker_caps:
            assert status == JobStatus.FINISHED, f"{sorted(worker_caps)} should have run a {sorted(need)} task"
        else:
            assert status == JobStatus.QUEUED, f"{sorted(worker_caps)} must not take a {sorted(need)} task"


def test_fifo_within_a_queue(redis_conn):
    ids = [routing.enqueue_task(redis_conn, storage.store_input(redis_conn, png(8, 8, (i, i, i))),
                                [{"filter": "grayscale"}], {}) for i in range(6)]
    burst(redis_conn, {"io"})
    fetched = [fetch_job(redis_conn, i) for i in ids]
    assert all(j.get_status() == JobStatus.FINISHED for j in fetched)
    started = [j.started_at for j in fetched]
    assert started == sorted(started)


class CountingConnection(redis.Connection):
    """A real connection that counts what it sends: one send = one round trip."""

    sends = 0

    def send_packed_command(self, command, check_health=True):
        CountingConnection.sends += 1
        return super().send_packed_command(command, check_health)


def test_enqueue_is_two_round_trips(redis_server, redis_conn):
    conn = redis.Redis(connection_pool=redis.ConnectionPool(
        connection_class=CountingConnection, host="127.0.0.1", port=redis_server.port))
    digest = storage.store_input(conn, png())
    routing.enqueue_task(conn, digest, [{"filter": "grayscale"}], {})   # warms RQ's version cache
    CountingConnection.sends = 0
    routing.enqueue_task(conn, digest, [{"filter": "blur"}, {"filter": "sharpen"}], {})
    assert CountingConnection.sends == 2
