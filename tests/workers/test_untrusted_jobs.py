"""Nothing read from Redis runs code: the strict JSON serializer and FleetJob, in process.

Each test plants what an attacker with write access to Redis could (a pickled job, a
JSON job naming os.system, pickled meta or result, torn fields), then runs the fleet's
worker class (workers.worker.run_burst) and the status readers on a real redis-server,
and checks that the marker file the pickles would write never appears and that each
planted job ends as a job_failure that says why. The same attack against separate
worker and API processes is in tests/ops/test_planted_pickles.py.
"""
from __future__ import annotations

import io
import pickle
import zlib
from base64 import b64encode
from pathlib import Path

import pytest
from PIL import Image

from workers import jobs, routing, stats, storage
from workers.jobs import FleetJob, fetch_job
from workers.registry import read_workers
from workers.serializer import StrictJSONSerializer, UnreadablePayload
from workers.settings import HEARTBEAT_KEY, SERIALIZER
from workers.status import list_tasks, task_status
from workers.worker import run_burst


class Marker:
    """Unpickling this writes `path`: the proof that something unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('unpickled')",))


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def submit(conn) -> str:
    return routing.enqueue_task(conn, storage.store_input(conn, png()), [{"filter": "grayscale"}], {})


def failed_with(conn, task_id: str) -> dict:
    status = task_status(conn, task_id)
    assert status["status"] == "failed", status
    assert status["failure_type"] == "job_failure" and status["failure_reason"], status
    return status


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "planted code ran: the marker file exists"


def test_serializer_is_json_and_refuses_pickle(marker):
    assert StrictJSONSerializer.loads(StrictJSONSerializer.dumps({"a": [1, "x"]})) == {"a": [1, "x"]}
    with pytest.raises(UnreadablePayload, match="pickled"):
        StrictJSONSerializer.loads(pickle.dumps(Marker(marker)))
    with pytest.raises(UnreadablePayload, match="not JSON"):
        StrictJSONSerializer.loads(b"\x00garbage")
    with pytest.raises(ValueError):
        StrictJSONSerializer.dumps(float("nan"))
    assert SERIALIZER is StrictJSONSerializer


def test_pickled_job_data_fails_without_unpickling_and_the_worker_goes_on(redis_conn, marker):
    bad = submit(redis_conn)
    redis_conn.hset(f"rq:job:{bad}", "data", zlib.compress(pickle.dumps(Marker(marker))))
    good = submit(redis_conn)
    assert run_burst(redis_conn, ("io",)) == 2
    reason = failed_with(redis_conn, bad)["failure_reason"]
    assert "pickled" in reason and "not run" in reason
    assert task_status(redis_conn, good)["status"] == "finished"


@pytest.mark.parametrize("func_name", ["os.system", "builtins.exec", "workers.tasks.check_payload"])
def test_json_job_naming_other_code_is_refused(redis_conn, marker, func_name):
    job = jobs.queue(redis_conn, "pixelfleet:io").enqueue_call(
        func_name, args=(f"touch {marker}",), meta={"capabilities": ["io"]})
    assert run_burst(redis_conn, ("io",)) == 1
    reason = failed_with(redis_conn, job.id)["failure_reason"]
    assert repr(func_name) in reason and routing.TASK_FUNCTION in reason


def test_callbacks_named_in_the_hash_are_refused(redis_conn, marker):
    task_id = submit(redis_conn)
    redis_conn.hset(f"rq:job:{task_id}", mapping={"failure_callback_name": "os.system",
                                                   "success_callback_name": "os.system"})
    assert run_burst(redis_conn, ("io",)) == 1
    assert "callbacks" in failed_with(redis_conn, task_id)["failure_reason"]


def test_pickled_meta_is_never_unpickled_by_readers_or_the_worker(redis_conn, marker):
    task_id = submit(redis_conn)
    redis_conn.hset(f"rq:job:{task_id}", "meta", pickle.dumps(Marker(marker)))
    # Readers first (API status and list): a failure with a reason, not an error.
    assert "meta" in failed_with(redis_conn, task_id)["failure_reason"]
    assert [t["status"] for t in list_tasks(redis_conn)] == ["failed"]
    assert run_burst(redis_conn, ("io",)) == 1
    assert "meta" in failed_with(redis_conn, task_id)["failure_reason"]


def test_pickled_result_reads_as_a_failure(redis_conn, marker):
    task_id = submit(redis_conn)
    assert run_burst(redis_conn, ("io",)) == 1
    assert task_status(redis_conn, task_id)["status"] == "finished"
    stream = f"rq:results:{task_id}"
    entry_id = redis_conn.xrevrange(stream, count=1)[0][0]
    redis_conn.xadd(stream, {"type": 1, "return_value": b64encode(pickle.dumps(Marker(marker))),
                             "worker_name": "x"})
    assert entry_id
    status = failed_with(redis_conn, task_id)
    assert "result" in status["failure_reason"] and status["result"] is None
    redis_conn.hset(f"rq:job:{task_id}", "result", pickle.dumps(Marker(marker)))
    assert fetch_job(redis_conn, task_id).return_value() is None


def test_torn_job_fields_do_not_crash_readers_or_the_worker(redis_conn):
    task_id = submit(redis_conn)
    redis_conn.hset(f"rq:job:{task_id}", mapping={"created_at": "yesterday", "status": "hacked"})
    job = fetch_job(redis_conn, task_id)
    assert isinstance(job, FleetJob) and job.unreadable
    assert "job record" in failed_with(redis_conn, task_id)["failure_reason"]
    assert run_burst(redis_conn, ("io",)) == 1


@pytest.mark.parametrize("meta", [b"[1, 2]", b'{"losses": "many", "capabilities": [1]}', b'"text"'])
def test_meta_of_the_wrong_shape_is_a_reasoned_failure(redis_conn, meta):
    task_id = submit(redis_conn)
    redis_conn.hset(f"rq:job:{task_id}", "meta", meta)
    assert "meta" in failed_with(redis_conn, task_id)["failure_reason"]
    assert run_burst(redis_conn, ("io",)) == 1
    failed_with(redis_conn, task_id)


def test_planted_heartbeats_and_completions_are_skipped(redis_conn, marker):
    redis_conn.set(HEARTBEAT_KEY.format(name="evil"), pickle.dumps(Marker(marker)))
    redis_conn.set(HEARTBEAT_KEY.format(name="odd"), b'{"name": "odd", "cpu_percent": "lots", "capabilities": "io"}')
    workers = read_workers(redis_conn)
    assert [w["name"] for w in workers] == ["odd"]
    assert workers[0]["cpu_percent"] is None and workers[0]["capabilities"] is None
    redis_conn.zadd("pixelfleet:completions", {pickle.dumps(Marker(marker)): 9e9, b"{}": 9e9})
    redis_conn.hset("pixelfleet:counters", mapping={"completed": "NaN?", "submitted": 3})
    assert stats.recent_completions(redis_conn, 60) == []
    assert stats.counters(redis_conn)["submitted"] == 3


def test_a_planted_output_content_type_is_not_served(redis_conn):
    storage.store_output(redis_conn, "t1", b"\x89PNG...", "png")
    assert storage.load_output(redis_conn, "t1")[1] == "image/png"
    redis_conn.hset(storage.output_key("t1"), "content_type", b"text/html")
    assert storage.load_output(redis_conn, "t1") == (b"\x89PNG...", "application/octet-stream")
    redis_conn.hset(storage.output_key("t1"), "content_type", b"\xff\xfe")
    assert storage.load_output(redis_conn, "t1")[1] == "application/octet-stream"
