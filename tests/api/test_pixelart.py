"""POST /api/process: pixel art in one call through the real queue and a real worker."""
from __future__ import annotations

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image

from tests.api.conftest import error_of, png_bytes

PNG_B64 = base64.b64encode(png_bytes(48, 32)).decode()


def post(api, body):
    return api.post("/api/process", body, format="json")


def decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"))


@pytest.mark.timeout(150)
def test_pixel_art_in_one_call_with_a_real_worker(api, redis_conn, start_worker):
    start_worker("pixel-e2e", "cpu")
    response = post(api, {"image": PNG_B64, "pixel_size": 8, "palette_size": 4, "dither": True})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "finished" and body["width"] == 48 and body["height"] == 32
    assert body["content_type"] == "image/png" and body["worker"] == "pixel-e2e"
    assert body["params"]["block_size"] == 8 and body["params"]["dither"] == "floyd-steinberg"
    assert body["processing_ms"] > 0 and body["task_id"]
    pixels = decode(body["image"])
    assert pixels.shape == (32, 48, 3)
    blocks = pixels.reshape(4, 8, 6, 8, 3)
    assert (blocks == blocks[:, :1, :, :1, :]).all(), "every 8x8 block is one colour"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) <= 4

    # The task went through the queue like every other: its status is there to read.
    assert api.get(f"/api/tasks/{body['task_id']}/").json()["status"] == "finished"

    bayer = post(api, {"image": PNG_B64, "pixel_size": 4, "palette_size": 2, "dither": "bayer",
                       "upscale": False})
    assert bayer.status_code == 200, bayer.content
    assert decode(bayer.json()["image"]).shape == (8, 12, 3)
    assert bayer.json()["params"]["dither"] == "bayer"

    started = time.monotonic()
    early = post(api, {"image": PNG_B64, "pixel_size": 2, "dither": False, "wait": 0})
    assert time.monotonic() - started < 5
    if early.status_code == 202:          # the worker may still win a race with a 0 s wait
        assert early.json()["status"] in ("queued", "started")
        assert early.json()["status_url"].endswith(f"/api/tasks/{early.json()['task_id']}/")
    else:
        assert early.status_code == 200


def test_no_capable_worker_answers_202_at_once(api, redis_conn):
    from workers import jobs

    started = time.monotonic()
    response = post(api, {"image": PNG_B64, "pixel_size": 8, "palette_size": 16, "dither": True})
    assert time.monotonic() - started < 5
    assert response.status_code == 202, response.content
    body = response.json()
    assert "no live worker has capabilities cpu" in body["waiting_reason"]
    assert body["status_url"].endswith(f"/api/tasks/{body['task_id']}/")
    assert jobs.queue(redis_conn, "pixelfleet:cpu").job_ids == [body["task_id"]]


def test_wait_is_bounded_by_the_server_setting(api, monkeypatch):
    monkeypatch.setenv("PIXELFLEET_PROCESS_WAIT", "2")
    response = post(api, {"image": PNG_B64, "wait": 5})
    assert response.status_code == 400 and "wait must be" in error_of(response)["message"]


@pytest.mark.parametrize("body, status, text", [
    ({}, 400, "empty body"),
    ({"pixel_size": 8}, 400, "no image"),
    ({"image": PNG_B64, "pixel_size": 0}, 400, "pixel_size"),
    ({"image": PNG_B64, "pixel_size": "big"}, 400, "pixel_size"),
    ({"image": PNG_B64, "palette_size": 300}, 400, "palette_size"),
    ({"image": PNG_B64, "dither": "sparkle"}, 400, "dither"),
    ({"image": PNG_B64, "wait": -1}, 400, "wait"),
    ({"image": PNG_B64, "wait": "soon"}, 400, "wait"),
    ({"image": "%%%not-base64%%%"}, 400, "base64"),
    ({"image": base64.b64encode(b"plain text, not an image").decode()}, 422, "image"),
    ({"image": PNG_B64, "format": "tiff"}, 400, "format"),
])
def test_bad_requests_are_4xx_and_enqueue_nothing(api, redis_conn, body, status, text):
    from workers.stats import counters

    response = post(api, body)
    assert response.status_code == status, response.content
    assert text in error_of(response)["message"]
    assert counters(redis_conn)["submitted"] == 0


def test_malformed_json(api):
    response = api.post("/api/process", "{oops", content_type="application/json")
    assert response.status_code == 400 and error_of(response)["code"] == "malformed_request"


def test_polling_sleeps_grow_to_100_ms_and_respect_the_bound(redis_conn):
    """The wait is a poll with growing sleeps (no busy loop) that returns at the bound."""
    from api.batch import POLL_MAX_S, wait_for_tasks
    from tests.api.conftest import submit_io_task

    task_id = submit_io_task(redis_conn)           # queued, no worker: never finishes here
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    started = time.monotonic()
    statuses = wait_for_tasks(redis_conn, [task_id], timeout_s=0.8, sleep=sleep)
    elapsed = time.monotonic() - started
    assert 0.8 <= elapsed < 1.5
    assert statuses[task_id]["status"] == "queued"
    assert sleeps[0] == pytest.approx(0.005) and max(sleeps) <= POLL_MAX_S
    assert sleeps == sorted(sleeps[:-1]) + sleeps[-1:]     # non-decreasing until the last
    assert len(sleeps) < 25                                 # ~10 reads a second at most


def test_multipart_form_is_accepted_too(api, redis_conn):
    """A form upload carries text: "4", "true" are read as the numbers and flags they are."""
    import io as std_io

    upload = std_io.BytesIO(png_bytes(48, 32))
    upload.name = "in.png"
    response = api.post("/api/process", {"image": upload, "pixel_size": "4", "palette_size": "8",
                                         "dither": "true", "outline": "false", "wait": "0"},
                        format="multipart")
    assert response.status_code == 202, response.content      # no worker here: queued at once
    from workers.status import task_status

    steps = task_status(redis_conn, response.json()["task_id"])["description"]
    assert "block_size=4" in steps and "palette_size=8" in steps and "dither=floyd-steinberg" in steps
