"""Inputs live as long as a queued or running task needs them (real Redis, real worker).

Every path that ends a task is covered: finished, failed (job_failure), canceled, the
reaper's last strike (worker_failure); a retry takes the input again; and a release
that comes while the task still runs (a late worker) changes nothing.
"""
from __future__ import annotations

import io

import pytest
from PIL import Image
from workers.jobs import fetch_job

from tests.storage_helpers import use_store
from workers import failures, routing, settings, status, storage
from workers.worker import run_burst

STEPS = [{"filter": "grayscale"}]


@pytest.fixture(autouse=True, params=["redis", "file"])
def backend(request, tmp_path, monkeypatch) -> str:
    """Every test here runs on both stores: the fleet's Redis and a shared directory."""
    return use_store(request.param, tmp_path, monkeypatch)


def png(seed: int = 0, side: int = 16) -> bytes:
    image = Image.new("RGB", (side, side), (seed % 256, (seed * 7) % 256, 3))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def blob_exists(conn, digest: str) -> bool:
    return storage.current_store().get_input(conn, digest) is not None


def stored_inputs(conn) -> int:
    store = storage.current_store()
    if store.in_redis:
        return len(list(conn.scan_iter(settings.INPUT_KEY.format(digest="*"))))
    return sum(1 for p in store.inputs.rglob("*") if p.is_file())


def test_shared_input_is_freed_only_when_its_last_task_ends(redis_conn):
    """Cancel one of two tasks on the same bytes: the other still holds them; when it
    finishes, they are freed at once (a finished task has nothing to retry)."""
    data = png(1)
    digest = storage.digest_of(data)
    first = routing.enqueue_task(redis_conn, None, STEPS, {}, data=data)
    second = routing.enqueue_task(redis_conn, digest, [{"filter": "blur"}], {}, data=data)
    assert storage.input_holders(redis_conn, digest) == {first, second}
    assert stored_inputs(redis_conn) == 1                             # stored once
    status.cancel_task(redis_conn, first)
    assert storage.input_holders(redis_conn, digest) == {second} and blob_exists(redis_conn, digest)
    assert run_burst(redis_conn) == 1
    assert status.task_status(redis_conn, second)["status"] == "finished"
    assert not blob_exists(redis_conn, digest) and not redis_conn.exists(storage.refs_key(digest))
    assert storage.load_output(redis_conn, second) is not None       # the result stays


def test_many_different_inputs_all_freed_after_their_tasks(redis_conn):
    ids = [routing.enqueue_task(redis_conn, None, STEPS, {}, data=png(i)) for i in range(12)]
    assert stored_inputs(redis_conn) == 12
    assert run_burst(redis_conn) == 12
    assert all(status.task_status(redis_conn, i)["status"] == "finished" for i in ids)
    assert stored_inputs(redis_conn) == 0
    assert list(redis_conn.scan_iter(settings.INPUT_REFS_KEY.format(digest="*"))) == []
    assert not list(redis_conn.scan_iter(settings.INPUT_KEY.format(digest="*")))       # nor in Redis


def input_expires_within(conn, digest: str) -> float:
    """Seconds until the stored input expires (TTL in Redis, mtime of a file)."""
    import time
    store = storage.current_store()
    if store.in_redis:
        return conn.ttl(storage.input_key(digest))
    return store.input_path(digest).stat().st_mtime - time.time()


def test_failed_task_keeps_its_input_for_the_retry_window_only(redis_conn, monkeypatch):
    broken = b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20      # the worker's decode refuses it
    task_id = routing.enqueue_task(redis_conn, None, STEPS, {}, data=broken)
    assert run_burst(redis_conn) == 1
    info = status.task_status(redis_conn, task_id)
    assert info["status"] == "failed" and info["failure_type"] == "job_failure"
    digest = storage.digest_of(broken)
    assert blob_exists(redis_conn, digest) and not storage.input_holders(redis_conn, digest)
    assert 0 < input_expires_within(redis_conn, digest) <= settings.retry_window_s() + 1   # then it goes
    monkeypatch.setenv("PIXELFLEET_RETRY_WINDOW_S", "0")             # no window: freed at once
    other = routing.enqueue_task(redis_conn, None, STEPS, {}, data=broken + b"x")
    assert run_burst(redis_conn) == 1 and status.task_status(redis_conn, other)["status"] == "failed"
    assert not blob_exists(redis_conn, storage.digest_of(broken + b"x"))


def test_reapers_last_strike_releases_the_input(redis_conn, monkeypatch):
    monkeypatch.setenv("PIXELFLEET_RETRY_WINDOW_S", "0")
    data = png(2)
    task_id = routing.enqueue_task(redis_conn, None, STEPS, {}, data=data)
    job = fetch_job(redis_conn, task_id)
    job.meta["losses"] = settings.MAX_WORKER_LOSSES
    failures.fail_lost_job(redis_conn, job, "lost three times")
    assert not blob_exists(redis_conn, storage.digest_of(data))


def test_release_while_the_task_still_runs_changes_nothing(redis_conn):
    """A late worker (or a second code path) releasing a queued or started task must not
    take the input from under it: the release waits for a final RQ status."""
    data = png(3)
    task_id = routing.enqueue_task(redis_conn, None, STEPS, {}, data=data)
    job = fetch_job(redis_conn, task_id)
    assert storage.release_task_input(redis_conn, job) is False          # queued
    redis_conn.hset(job.key, "status", "started")
    assert storage.release_task_input(redis_conn, job) is False          # running
    assert storage.input_holders(redis_conn, storage.digest_of(data)) == {task_id}
    redis_conn.hset(job.key, "status", "queued")
    assert run_burst(redis_conn) == 1
    assert status.task_status(redis_conn, task_id)["status"] == "finished"
    assert storage.release_task_input(redis_conn, job) is False          # twice: nothing more to free


def test_release_is_idempotent_per_task(redis_conn):
    data = png(4)
    digest = storage.digest_of(data)
    storage.acquire_input(redis_conn, "t1", data=data)
    storage.acquire_input(redis_conn, "t2", digest)
    assert storage.release_input(redis_conn, digest, "t1") is False
    assert storage.release_input(redis_conn, digest, "t1") is False      # t1 again: t2 still holds it
    assert blob_exists(redis_conn, digest)
    assert storage.release_input(redis_conn, digest, "t2") is True
    assert not blob_exists(redis_conn, digest)


def test_acquire_without_bytes_refuses_a_freed_input(redis_conn):
    digest = storage.digest_of(png(5))
    with pytest.raises(storage.InputMissing, match="submit the image again"):
        storage.acquire_input(redis_conn, "t1", digest)
    assert not redis_conn.exists(storage.refs_key(digest))


def test_acquire_with_bytes_that_do_not_match_the_digest_is_refused(redis_conn):
    with pytest.raises(storage.InvalidDigest, match="does not match"):
        storage.acquire_input(redis_conn, "t1", storage.digest_of(b"other"), data=png(6))
    assert redis_conn.dbsize() == 0


def test_input_and_refs_keep_a_safety_ttl(redis_conn, backend):
    data = png(7)
    digest = storage.acquire_input(redis_conn, "t1", data=data, ttl=50)
    assert 0 < redis_conn.ttl(storage.refs_key(digest)) <= 50
    store = storage.current_store()
    if backend == "redis":
        assert 0 < redis_conn.ttl(storage.input_key(digest)) <= 50
    else:   # a file's mtime is its expiry; the sweep deletes it once passed
        import os
        import time
        path = store.input_path(digest)
        assert time.time() < path.stat().st_mtime <= time.time() + 51
        os.utime(path, (time.time(), time.time() - 1))
        assert store.get_input(redis_conn, digest) is None          # expired reads as gone
        assert storage.housekeeping(redis_conn) == 0 and path.exists()   # but a task holds it: kept
        assert store.get_input(redis_conn, digest) == data
        os.utime(path, (time.time(), time.time() - 1))
        redis_conn.delete(storage.refs_key(digest), settings.STORAGE_SWEEP_KEY)   # the refs' TTL ran out too
        assert storage.housekeeping(redis_conn) == 1 and not path.exists()
        assert store.used_bytes(redis_conn) == 0


def test_deleting_an_input_waits_for_no_one_but_a_new_reference_waits_for_the_deletion(redis_conn, backend):
    """File store: a release that frees takes the deletion lock; a reference arriving
    meanwhile waits, then stores the bytes again instead of losing them."""
    if backend != "file":
        pytest.skip("the Redis store frees inside one Lua script: there is no window")
    import threading
    data = png(8)
    digest = storage.acquire_input(redis_conn, "t1", data=data)
    redis_conn.set(storage.lock_key(digest), "someone", px=400)      # a deletion in progress
    took = []
    thread = threading.Thread(target=lambda: took.append(storage.acquire_input(redis_conn, "t2", data=data)))
    thread.start()
    thread.join(5)
    assert took == [digest] and storage.input_holders(redis_conn, digest) == {"t1", "t2"}
    assert blob_exists(redis_conn, digest)


def test_results_are_kept_an_hour_by_default():
    assert settings.OUTPUT_TTL == 3600 or "PIXELFLEET_OUTPUT_TTL" in __import__("os").environ


def reserved(conn) -> int:
    return int(conn.hget(settings.STORAGE_STATS_KEY, "reserved_bytes") or 0)


def test_each_accepted_task_reserves_its_results_worst_case_until_it_ends(redis_conn):
    from workers.storage_budget import output_bound
    data = png(9, side=64)
    thumb = [{"filter": "resize", "params": {"width": 32}}]
    a = routing.enqueue_task(redis_conn, None, thumb, {"format": "png"}, data=data)
    b = routing.enqueue_task(redis_conn, None, STEPS, {"format": "jpeg"}, data=data)
    assert output_bound(data, thumb, "png") == 32 * 32 * 4 + 4096           # resized: 32×32 RGBA at worst
    assert reserved(redis_conn) == (32 * 32 * 4 + 4096) + int(64 * 64 * 1.5) + 4096
    status.cancel_task(redis_conn, a)
    assert reserved(redis_conn) == int(64 * 64 * 1.5) + 4096
    assert run_burst(redis_conn) == 1 and status.task_status(redis_conn, b)["status"] == "finished"
    assert reserved(redis_conn) == 0 and redis_conn.hlen(settings.STORAGE_RESERVED_KEY) == 0


def test_housekeeping_drops_reservations_a_lost_task_left(redis_conn):
    task_id = routing.enqueue_task(redis_conn, None, STEPS, {}, data=png(10))
    storage.reserve_output(redis_conn, "ghost-task", 12345)                     # no such job: leaked
    before = reserved(redis_conn)
    assert storage.housekeeping(redis_conn) >= 1
    assert reserved(redis_conn) == before - 12345
    assert redis_conn.hexists(settings.STORAGE_RESERVED_KEY, task_id)            # the queued one stays
    assert storage.housekeeping(redis_conn) == 0                                 # once per sweep period fleet-wide


def test_bytes_already_stored_are_not_sent_again(redis_conn, backend):
    """The same upload while an earlier task holds it takes a reference only: the bytes
    travel to Redis once (INFO's total_net_input_bytes); different bytes travel."""
    if backend != "redis":
        pytest.skip("the file store writes its own files; this is about Redis traffic")
    data = png(5, side=256) + b"\0" * 200_000          # trailing bytes: a 200 KB upload that still decodes

    def sent(image: bytes) -> int:
        before = redis_conn.info("stats")["total_net_input_bytes"]
        routing.enqueue_task(redis_conn, None, STEPS, {}, data=image)
        return redis_conn.info("stats")["total_net_input_bytes"] - before

    assert sent(data) > len(data)                        # first: stored
    assert sent(data) < len(data) // 20                  # again: a reference
    assert sent(png(6, side=256) + b"\0" * 200_000) > len(data)
    assert stored_inputs(redis_conn) == 2
