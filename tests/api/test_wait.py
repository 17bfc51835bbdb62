"""`?wait=S` against a real server process (gunicorn + uvicorn workers, the project's config)
and a real worker process: wakes on completion, failure and cancel, times out with the
right codes, refuses bad values, and 200 waiting clients do not slow submits or health.
"""
from __future__ import annotations

import io
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests
from PIL import Image

from tests.api.conftest import png_bytes
from tests.fleet_helpers import submit_slow, wait_until
from tests.ops.conftest import LiveFleet, running_fleet
from workers import settings, storage
from workers.routing import enqueue_task

WAIT_DB = 5
RESIZE = '[{"filter": "resize", "params": {"width": 32}}]'
NEVER_ENDS = {"device": "gpu"}   # a CPU-only fleet never takes it: it stays queued


@pytest.fixture(scope="module")
def fleet(redis_server, tmp_path_factory):
    """The API as `make run` serves it (2 processes) and one io+cpu worker, on their own DB."""
    with running_fleet(redis_server, WAIT_DB, tmp_path_factory.mktemp("wait-logs"), {"wait-worker": "io,cpu"},
                       token="", PIXELFLEET_API_WORKERS="2") as live:
        yield live


@pytest.fixture
def conn(fleet) -> redis.Redis:
    return redis.Redis.from_url(fleet.redis_url)


def submit(fleet: LiveFleet, steps: str = RESIZE, wait: str | None = None, **fields) -> requests.Response:
    query = f"?wait={wait}" if wait is not None else ""
    return requests.post(f"{fleet.url}/api/tasks/{query}", timeout=90,
                         files={"image": ("small.png", png_bytes(64, 48), "image/png")},
                         data={"steps": steps, **fields})


def settled_request_count(conn: redis.Redis) -> int:
    """The fleet-wide request count once earlier requests' batches are flushed (api/request_counter.py)."""
    from api.request_counter import FLUSH_S

    time.sleep(2 * FLUSH_S)
    return int(conn.get(settings.API_REQUESTS_KEY) or 0)


def timed_get(fleet: LiveFleet, path: str, timeout: float = 90) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.get(f"{fleet.url}{path}", timeout=timeout)
    return response, time.monotonic() - started


def test_status_wait_returns_when_the_task_finishes(fleet, conn):
    task_id = submit_slow(conn, 2.0)
    response, elapsed = timed_get(fleet, f"/api/tasks/{task_id}/?wait=60")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "finished", body
    assert elapsed < 55, "woken by the end of the task, not by the timeout"
    # A second waiter on an ended task answers at once; so does the original path.
    response, elapsed = timed_get(fleet, f"/api/task/{task_id}/status/?wait=60")
    assert response.json()["status"] == "finished" and elapsed < 5


def test_result_wait_wakes_every_waiter_of_one_task(fleet, conn):
    task_id = submit_slow(conn, 2.0)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: timed_get(fleet, f"/api/tasks/{task_id}/result/?wait=60"), range(4)))
    for response, elapsed in answers:
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "image/png"
        assert elapsed < 55


def test_wait_wakes_on_failure_with_409_on_the_result(fleet, conn):
    digest = storage.store_input(conn, b"these bytes are not an image")   # only the worker finds out
    task_id = enqueue_task(conn, digest, [{"filter": "grayscale", "params": {}}], {"source": "test"})
    response, elapsed = timed_get(fleet, f"/api/tasks/{task_id}/result/?wait=60")
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "not_finished" and error["details"]["status"] == "failed"
    assert elapsed < 55
    status = timed_get(fleet, f"/api/tasks/{task_id}/?wait=60")[0].json()
    assert status["status"] == "failed" and status["failure_type"] == "job_failure"


def test_wait_times_out_with_the_current_status(fleet, conn):
    task_id = submit(fleet, **NEVER_ENDS).json()["task_id"]
    response, elapsed = timed_get(fleet, f"/api/tasks/{task_id}/?wait=0.6")
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert 0.5 <= elapsed < 10
    response, elapsed = timed_get(fleet, f"/api/tasks/{task_id}/result/?wait=0.6")
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued"
    assert response.headers["Location"].endswith(f"/api/tasks/{task_id}/result/")
    assert 0.5 <= elapsed < 10
    # Without wait, the result of an unfinished task is still the 409 it always was.
    assert requests.get(f"{fleet.url}/api/tasks/{task_id}/result/", timeout=10).status_code == 409


@pytest.mark.parametrize("value", ["abc", "-1", "61", "nan", "inf", ""])
def test_bad_wait_values_are_400_saying_so(fleet, value):
    for path in ("/api/tasks/some-task/", "/api/tasks/some-task/result/"):
        response = requests.get(f"{fleet.url}{path}?wait={value}", timeout=10)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_wait" and "from 0 to 60" in error["message"]
    response = submit(fleet, wait=value)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_wait"


def test_bad_wait_submits_nothing(fleet, conn):
    before = int(conn.hget(settings.COUNTERS_KEY, "submitted") or 0)
    assert submit(fleet, wait="soon").status_code == 400
    assert int(conn.hget(settings.COUNTERS_KEY, "submitted") or 0) == before


def test_submit_and_wait_returns_the_image_in_one_call(fleet, conn):
    response = submit(fleet, wait="60", format="jpeg")
    assert response.status_code == 200, response.text[:300]
    assert response.headers["Content-Type"] == "image/jpeg"
    task_id = response.headers["X-Task-Id"]
    assert Image.open(io.BytesIO(response.content)).size == (32, 24)
    # Delivered: kept only briefly for a client that lost the response.
    assert 0 < conn.ttl(storage.output_key(task_id)) <= settings.DELIVERED_TTL
    again = requests.get(f"{fleet.url}/api/tasks/{task_id}/result/", timeout=10)
    assert again.status_code == 200 and again.content == response.content


def test_submit_and_wait_times_out_into_the_usual_202(fleet):
    started = time.monotonic()
    response = submit(fleet, wait="0.5", **NEVER_ENDS)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued" and response.json()["task_id"]
    assert time.monotonic() - started < 10


def test_submit_and_wait_reports_a_canceled_task_as_422(fleet, conn):
    def queued() -> set[str]:
        tasks = requests.get(f"{fleet.url}/api/tasks/?status=queued", timeout=10).json()["tasks"]
        return {t["task_id"] for t in tasks}

    before = queued()
    outcome: dict = {}
    waiter = threading.Thread(target=lambda: outcome.update(response=submit(fleet, wait="60", **NEVER_ENDS)))
    waiter.start()
    deadline = time.monotonic() + 30
    task_id = None
    while task_id is None and time.monotonic() < deadline:
        task_id = next(iter(queued() - before), None)
        time.sleep(0.05)
    assert task_id, "the waiting submit's task never showed up as queued"
    assert requests.delete(f"{fleet.url}/api/tasks/{task_id}/", timeout=10).status_code == 200
    waiter.join(timeout=30)
    response = outcome["response"]
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "task_failed" and error["details"]["status"] == "canceled"


def p95_latencies(fleet: LiveFleet, rounds: int = 24) -> dict[str, float]:
    """p95 seconds of /api/health/ and of a small submit, each on a fresh connection."""
    times: dict[str, list[float]] = {"health": [], "submit": []}
    for _ in range(rounds):
        started = time.monotonic()
        assert requests.get(f"{fleet.url}/api/health/", timeout=10).status_code == 200
        times["health"].append(time.monotonic() - started)
        started = time.monotonic()
        assert submit(fleet).status_code == 202
        times["submit"].append(time.monotonic() - started)
    return {name: statistics.quantiles(values, n=20)[-1] for name, values in times.items()}


def test_two_hundred_waiters_do_not_block_submits_or_health(fleet):
    """The bar is 100 ms p95. On a loaded shared machine a submit alone can take longer,
    so the bound is 100 ms or twice what the same requests take with nobody waiting."""
    parked = submit(fleet, **NEVER_ENDS).json()["task_id"]
    p95_latencies(fleet, rounds=8)   # warm both processes' first-request paths
    alone = p95_latencies(fleet, rounds=32)
    waiting = threading.Semaphore(0)

    def wait_once(_: int) -> int:
        waiting.release()
        return requests.get(f"{fleet.url}/api/tasks/{parked}/?wait=45", timeout=90).status_code

    pool = ThreadPoolExecutor(200)
    futures = [pool.submit(wait_once, i) for i in range(200)]
    try:
        for _ in range(200):
            waiting.acquire(timeout=30)
        conn = redis.Redis.from_url(fleet.redis_url)
        wait_until(lambda: sum(c.get("cmd") == "blmove" for c in conn.client_list()) >= 200, 60,
                   what="200 waiting requests parked in BLMOVE")
        # Twice at most: a spike from another process on a shared machine is not a waiter
        # blocking a thread; that would show in both measurements (each ~24 s of waiting).
        for attempt in (1, 2):
            crowded = p95_latencies(fleet, rounds=32)
            over = {name: p95 for name, p95 in crowded.items() if p95 >= max(0.1, 2 * alone[name])}
            if not over:
                break
        assert not any(f.done() for f in futures), "the 200 were still waiting while we measured"
        assert not over, (over, crowded, alone)
    finally:
        requests.delete(f"{fleet.url}/api/tasks/{parked}/", timeout=10)   # the cancel wakes all 200
        codes = [f.result(timeout=60) for f in futures]
        pool.shutdown()
    assert codes == [200] * len(futures), sorted(set(codes))


def test_oversized_body_is_refused_before_it_is_read(fleet):
    """The ASGI guard (webapp/asgi.py) answers 413 from Content-Length alone: the client
    announced a body over the limit and sent none of it, and still gets its answer."""
    import json
    import socket

    from django.conf import settings as django_settings

    limit = django_settings.MAX_REQUEST_BYTES
    host, port = fleet.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST /api/tasks/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {limit + 1}\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(body)["error"]["code"] == "request_too_large"


def test_status_polls_are_answered_in_front_of_django_with_the_same_answers(fleet, conn):
    """GET status as JSON is served by api/asgi_status.py; a browser's HTML still by DRF."""
    task_id = submit(fleet, wait="60").headers["X-Task-Id"]
    before = settled_request_count(conn)
    response = requests.get(f"{fleet.url}/api/tasks/{task_id}/", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "finished" and body["result"]["width"] == 32
    assert {"task_id", "status", "progress", "worker", "queue", "submitted_at", "ended_at"} <= set(body)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    wait_until(lambda: int(conn.get(settings.API_REQUESTS_KEY)) == before + 1, 5,   # counted like any request
               what="the status request to be counted")
    assert requests.get(f"{fleet.url}/api/task/{task_id}/status/", timeout=10).json() == body
    missing = requests.get(f"{fleet.url}/api/tasks/no-such-task/", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "task_not_found"
    html = requests.get(f"{fleet.url}/api/tasks/{task_id}/", headers={"Accept": "text/html"}, timeout=10)
    assert html.status_code == 200 and html.headers["Content-Type"].startswith("text/html")
    assert task_id in html.text
    access = (fleet.log_dir / "api.log").read_text()
    assert f"path=/api/tasks/{task_id}/ status=200" in access


def test_results_are_served_in_front_of_django_with_the_same_answers(fleet, conn):
    """A plain GET of a result in Redis is served by api/asgi_status.py (one round trip):
    the image with its headers, and the Django view's refusals, codes and bodies alike."""
    task_id = submit(fleet, wait="60").headers["X-Task-Id"]
    before = settled_request_count(conn)
    response = requests.get(f"{fleet.url}/api/tasks/{task_id}/result/", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (32, 24)
    assert response.headers["Content-Disposition"] == f'inline; filename="{task_id}.png"'
    assert response.headers["Cache-Control"] == "private, max-age=3600"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Allow" not in response.headers                     # DRF adds Allow: not served by it
    wait_until(lambda: int(conn.get(settings.API_REQUESTS_KEY)) == before + 1, 5,
               what="the result request to be counted")
    queued = submit(fleet, **NEVER_ENDS).json()["task_id"]
    refused = requests.get(f"{fleet.url}/api/tasks/{queued}/result/", timeout=10)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_finished"
    assert "gpu" in refused.json()["error"]["message"]          # the waiting reason says why
    unknown = requests.get(f"{fleet.url}/api/tasks/no-such-task/result/", timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "task_not_found"
    bad = requests.get(f"{fleet.url}/api/tasks/bad%20id/result/", timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_task_id"
    assert requests.delete(f"{fleet.url}/api/tasks/{task_id}/result/", timeout=10).status_code == 204
    gone = requests.get(f"{fleet.url}/api/tasks/{task_id}/result/", timeout=10)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "result_expired"
    requests.delete(f"{fleet.url}/api/tasks/{queued}/", timeout=10)


def test_chunked_body_past_the_limit_gets_413(fleet):
    """No Content-Length to refuse by: the guard counts the chunks and answers 413 once past."""
    from django.conf import settings as django_settings

    limit = django_settings.MAX_REQUEST_BYTES
    chunk = b"x" * (1 << 20)

    def body():
        for _ in range(limit // len(chunk) + 2):
            yield chunk

    response = requests.post(f"{fleet.url}/api/tasks/", data=body(), timeout=60,
                             headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 413, response.text[:300]
    assert response.json()["error"]["code"] == "request_too_large"


def test_a_waiter_that_hangs_up_stops_waiting(fleet):
    """The client's disconnect ends its wait: its BLMOVE (a Redis connection) is released."""
    import socket

    parked = submit(fleet, **NEVER_ENDS).json()["task_id"]
    conn = redis.Redis.from_url(fleet.redis_url)

    def parked_waits() -> int:
        return sum(c.get("cmd") == "blmove" for c in conn.client_list())

    before = parked_waits()
    host, port = fleet.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(f"GET /api/tasks/{parked}/?wait=50 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    wait_until(lambda: parked_waits() > before, 30, what="the request to park in BLMOVE")
    sock.close()
    wait_until(lambda: parked_waits() == before, 30, what="the BLMOVE to end once the client left")
    requests.delete(f"{fleet.url}/api/tasks/{parked}/", timeout=10)


def test_requests_are_counted_in_batches(fleet, conn):
    """Every request is counted fleet-wide, but with one INCRBY per API process per
    FLUSH_S, not one Redis write per request (a write is an fsync under `always`)."""
    from api.request_counter import FLUSH_S

    task_id = submit(fleet).json()["task_id"]

    def writes() -> int:
        stats = conn.info("commandstats")
        return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("incr", "incrby"))

    before, writes_before = settled_request_count(conn), writes()
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:   # status polls (answered before Django) and health (Django)
        codes = list(pool.map(lambda i: requests.get(
            f"{fleet.url}/api/tasks/{task_id}/" if i % 8 else f"{fleet.url}/api/health/", timeout=30).status_code,
            range(80)))
    elapsed = time.monotonic() - started
    assert codes.count(200) == 80
    wait_until(lambda: int(conn.get(settings.API_REQUESTS_KEY) or 0) == before + 80, 10,
               what="the 80 requests to be counted")
    # Two API processes, each flushing at most once per FLUSH_S (plus one trailing flush).
    assert writes() - writes_before <= 2 * (elapsed / FLUSH_S + 2) < 80
