"""Multipart submits answered in front of Django (api/asgi_submit.py) against a real server
(gunicorn + uvicorn workers, the project's config) and a real worker: the same answers as
Django's path gives the same request.

Each case is sent twice: as a plain form, which the fast path takes, and with a MIME
preamble before the first boundary, which api.multipart_fast declines and Django's parser
reads to the same fields — so the second goes through Django and DRF as before. Status,
error body and the headers a client acts on must match; the access log says which path
answered each (front=submit).
"""
from __future__ import annotations

import io
import json
import os
import time
import uuid
from pathlib import Path

import pytest
import redis
import requests
from PIL import Image

from tests.api.conftest import png_bytes
from tests.ops.conftest import TOKEN, running_fleet

SUBMIT_DB = 9
RESIZE = '[{"filter": "resize", "params": {"width": 32}}]'
AUTH = {"Authorization": f"Bearer {TOKEN}"}
COMPARED_HEADERS = ("content-type", "location", "retry-after", "www-authenticate", "vary", "allow",
                    "x-frame-options", "x-content-type-options", "content-disposition")


@pytest.fixture(scope="module")
def fleet(redis_server, tmp_path_factory):
    """The API (2 processes, a token required, loopback host names only) and one io+cpu
    worker, on their own DB."""
    with running_fleet(redis_server, SUBMIT_DB, tmp_path_factory.mktemp("submit-logs"), {"submit-worker": "io,cpu"},
                       PIXELFLEET_API_WORKERS="2", PIXELFLEET_ALLOWED_HOSTS="127.0.0.1,localhost") as live:
        yield live


def encoded(fields: dict[str, str], files: list[tuple[str, str, bytes, str]], preamble: bool) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{n}"\r\n'
              f"Content-Type: {t}\r\n\r\n".encode() + data + b"\r\n" for k, n, data, t in files]
    body = (b"a MIME preamble, which parsers skip\r\n" if preamble else b"") + b"".join(parts) \
        + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post_both(fleet, fields: dict[str, str], files=(), query: str = "", headers: dict | None = None):
    """(fast path answer, Django path answer) to the same form."""
    answers = []
    for preamble in (False, True):
        body, content_type = encoded(fields, list(files), preamble)
        answers.append(requests.post(f"{fleet.url}/api/tasks/{query}", data=body, timeout=90,
                                     headers={"Content-Type": content_type, **(headers if headers is not None else AUTH)}))
    return answers


def same_answer(fast: requests.Response, slow: requests.Response) -> None:
    assert fast.status_code == slow.status_code, (fast.text, slow.text)
    for name in COMPARED_HEADERS:
        if name in ("location", "content-disposition"):   # they name the task, whose id differs
            assert (name in fast.headers) == (name in slow.headers), name
        else:
            assert fast.headers.get(name) == slow.headers.get(name), name
    if fast.headers.get("content-type", "").startswith("application/json"):
        assert without_ids(fast.json()) == without_ids(slow.json())


def without_ids(value):
    if isinstance(value, dict):
        return {k: without_ids(v) for k, v in value.items() if k not in ("task_id", "status_url", "result_url")}
    if isinstance(value, list):
        return [without_ids(v) for v in value]
    if isinstance(value, str) and "/api/tasks/" in value:
        return "<url>"
    return value


def image_file(data: bytes | None = None, name: str = "small.png") -> list[tuple[str, str, bytes, str]]:
    return [("image", name, data if data is not None else png_bytes(64, 48), "image/png")]


def fronted_posts(fleet) -> int:
    log = (fleet.log_dir / "api.log").read_text(errors="replace")
    return sum(1 for line in log.splitlines() if "method=POST" in line and "front=submit" in line)


def test_a_submit_is_answered_in_front_of_django_as_django_answers_it(fleet):
    before = fronted_posts(fleet)
    fast, slow = post_both(fleet, {"steps": RESIZE, "format": "png"}, image_file())
    assert fast.status_code == 202, fast.text
    same_answer(fast, slow)
    assert fast.json()["task_id"] != slow.json()["task_id"]
    time.sleep(0.3)
    assert fronted_posts(fleet) == before + 1, "the plain form is served in front of Django, the other is not"


def test_submit_and_wait_gives_the_same_image_either_way(fleet):
    fast, slow = post_both(fleet, {"steps": RESIZE, "format": "png"}, image_file(), query="?wait=60")
    assert fast.status_code == 200, fast.text
    same_answer(fast, slow)
    assert fast.content == slow.content
    assert Image.open(io.BytesIO(fast.content)).size == (32, 24)
    assert fast.headers["X-Task-Id"] in fast.headers["Content-Disposition"]


def test_a_wait_that_runs_out_is_the_same_202(fleet):
    # No GPU worker: a gpu task stays queued, so both waits run out. (A task that fails
    # while its submit waits: test_wait.py's canceled-task case, which takes this path.)
    fast, slow = post_both(fleet, {"steps": RESIZE, "device": "gpu"}, image_file(), query="?wait=0.5")
    assert fast.status_code == 202, fast.text
    same_answer(fast, slow)


@pytest.mark.parametrize("case", ["not an image", "unknown field", "bad steps", "no image", "bad wait",
                                  "two images with wait", "no token", "wrong token", "bad quality"])
def test_refusals_are_the_same_either_way(fleet, case):
    fields, files, query, headers = {"steps": RESIZE}, image_file(), "", None
    if case == "not an image":
        files = image_file(b"this is not an image at all")
    elif case == "unknown field":
        fields["filter"] = "blur"
    elif case == "bad steps":
        fields["steps"] = '[{"filter": "no-such-filter"}]'
    elif case == "no image":
        files = []
    elif case == "bad wait":
        query = "?wait=forever"
    elif case == "two images with wait":
        files = image_file() + [("image", "b.png", png_bytes(20, 20), "image/png")]
        query = "?wait=5"
    elif case == "no token":
        headers = {}
    elif case == "wrong token":
        headers = {"Authorization": "Bearer not-the-token"}
    elif case == "bad quality":
        fields["quality"] = "999"
    fast, slow = post_both(fleet, fields, files, query=query, headers=headers)
    assert 400 <= fast.status_code < 500, fast.text
    same_answer(fast, slow)


def test_a_bad_host_is_refused_the_same_way(fleet):
    fast, slow = post_both(fleet, {"steps": RESIZE}, image_file(), headers={**AUTH, "Host": "evil.example"})
    assert fast.status_code == 400
    assert fast.json()["error"]["code"] == slow.json()["error"]["code"]


def test_json_and_declined_forms_still_go_to_django(fleet):
    before = fronted_posts(fleet)
    answer = requests.post(f"{fleet.url}/api/tasks/", json={"sample": "4k", "steps": json.loads(RESIZE)},
                           headers=AUTH, timeout=30)
    assert answer.status_code == 202, answer.text
    time.sleep(0.3)
    assert fronted_posts(fleet) == before


def test_throttled_submits_get_the_same_429(redis_server, tmp_path_factory):
    with running_fleet(redis_server, SUBMIT_DB + 1, tmp_path_factory.mktemp("throttle-logs"), {},
                       PIXELFLEET_THROTTLE_SUBMIT="2/hour") as live:
        first = post_both(live, {"steps": RESIZE}, image_file())
        assert [a.status_code for a in first] == [202, 202]
        fast, slow = post_both(live, {"steps": RESIZE}, image_file())
        assert fast.status_code == 429, fast.text
        same_answer(fast, slow)
        assert int(fast.headers["Retry-After"]) > 0
        conn = redis.Redis.from_url(live.redis_url)
        assert conn.llen("rq:queue:pixelfleet:io") + conn.llen("rq:queue:pixelfleet:cpu") <= 2


def api_page_faults(fleet) -> int:
    """Minor page faults so far of the API's processes (gunicorn's workers: children of the master)."""
    import psutil

    total = 0
    for child in psutil.Process(fleet.api.pid).children(recursive=True):
        fields = Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[7])    # minflt, field 10 of /proc/<pid>/stat
    return total


def test_big_uploads_do_not_fault_their_buffers_in_each_time(fleet):
    # workers/allocator.py, applied by gunicorn.conf.py's post_fork: a 6 MB upload's
    # buffers (the joined body, the file's slice) are reused from one request to the
    # next; untuned, each is faulted in anew (~1,500 faults per copy, measured ~3,000).
    body, content_type = encoded({"steps": RESIZE, "filterx": "1"},          # refused once parsed
                                 image_file(os.urandom(6 * 1024 * 1024), "big.png"), preamble=False)

    def send() -> None:
        answer = requests.post(f"{fleet.url}/api/tasks/", data=body, timeout=90,
                               headers={"Content-Type": content_type, **AUTH})
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "unknown_field"
    for _ in range(4):
        send()
    before = api_page_faults(fleet)
    rounds = 8
    for _ in range(rounds):
        send()
    per_upload = (api_page_faults(fleet) - before) / rounds
    assert per_upload < 800, f"{per_upload:.0f} page faults per 6 MB upload"
