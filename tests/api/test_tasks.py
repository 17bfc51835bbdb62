"""Task endpoints through DRF's client on the real Redis, and end to end with a real worker."""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from tests.api.conftest import error_of, png_bytes

RESIZE_BLUR = {"filters": ["resize", "blur"],
               "filter_params": {"resize": {"width": 24, "height": 16}, "blur": {"radius": 1.5}}}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def submit_json(api, body: dict, **extra):
    return api.post("/api/tasks/", body, format="json", **extra)


def test_submit_base64_returns_202_with_urls_and_waiting_reason(api, small_png):
    response = submit_json(api, {"image_base64": b64(small_png), **RESIZE_BLUR})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["queue"] == "pixelfleet:io"
    assert body["status_url"] == f"/api/tasks/{body['task_id']}/"
    assert response["Location"] == body["status_url"]
    assert body["image"]["width"] == 48 and body["image"]["height"] == 32
    assert "no live worker" in body["waiting_reason"]
    status = api.get(body["status_url"]).json()
    assert status["task_id"] == body["task_id"] and status["status"] == "queued"


def test_end_to_end_submit_process_download(api, small_png, burst_worker):
    task = submit_json(api, {"image_base64": b64(small_png), **RESIZE_BLUR, "format": "webp"}).json()
    assert burst_worker() == 1
    status = api.get(f"/api/tasks/{task['task_id']}/").json()
    assert status["status"] == "finished", status
    result = api.get(task["result_url"])
    assert result.status_code == 200
    assert result["Content-Type"] == "image/webp"
    image = Image.open(io.BytesIO(result.content))
    assert image.format == "WEBP" and image.size == (24, 16)


def test_multipart_several_images_give_several_tasks(api, burst_worker):
    files = [io.BytesIO(png_bytes(20, 10)), io.BytesIO(png_bytes(30, 12, fmt="JPEG"))]
    files[0].name, files[1].name = "a.png", "b.jpg"
    response = api.post("/api/tasks/", {"images": files, "filters": "grayscale", "format": "png"},
                        format="multipart")
    assert response.status_code == 202, response.content
    tasks = response.json()["tasks"]
    assert len(tasks) == 2 and tasks[0]["task_id"] != tasks[1]["task_id"]
    assert burst_worker() == 2
    sizes = [Image.open(io.BytesIO(api.get(t["result_url"]).content)).size for t in tasks]
    assert sizes == [(20, 10), (30, 12)]


def test_multipart_single_image_with_json_params(api, small_png):
    upload = io.BytesIO(small_png)
    upload.name = "photo.png"
    response = api.post("/api/tasks/", {"image": upload, "filters": '["blur"]',
                                        "filter_params": '{"blur": {"radius": 2}}'}, format="multipart")
    assert response.status_code == 202, response.content
    assert response.json()["image"]["source"] == "upload 'photo.png'"


def test_ordered_steps_may_repeat_a_filter_and_need_cpu(api, small_png):
    steps = [{"filter": "blur", "params": {"radius": 1}}, {"filter": "sharpen"}, {"name": "blur"}]
    body = submit_json(api, {"image_base64": [b64(small_png)], "steps": steps}).json()
    assert body["queue"] == "pixelfleet:cpu+io" and body["capabilities"] == ["cpu", "io"]


def test_device_gpu_routes_to_a_gpu_queue_and_says_why_it_waits(api, small_png, redis_conn):
    from tests.api.test_health import heartbeat
    heartbeat(redis_conn, "cpu-only", ["io", "cpu"])
    body = submit_json(api, {"image_base64": b64(small_png), "filters": ["grayscale"], "device": "gpu"}).json()
    assert "gpu" in body["capabilities"] and "gpu" in body["queue"]
    assert body["waiting_reason"] == "no live worker has capabilities gpu+io"


def test_sample_submit(api):
    body = submit_json(api, {"sample": "small", "filters": ["grayscale"]}).json()
    assert body["image"]["width"] == 640 and body["image"]["height"] == 360


def test_result_before_finish_is_409_naming_the_status(api, small_png):
    task = submit_json(api, {"image_base64": b64(small_png), "filters": ["grayscale"]}).json()
    response = api.get(task["result_url"])
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "not_finished" and "queued" in error["message"]


def test_unknown_and_malformed_task_ids(api):
    assert error_of(api.get("/api/tasks/0123abcd-0000-4000-8000-000000000000/"))["code"] == "task_not_found"
    assert api.get("/api/tasks/0123abcd-0000-4000-8000-000000000000/result/").status_code == 404
    bad = api.get("/api/tasks/bad%20id!/")
    assert bad.status_code == 400 and error_of(bad)["code"] == "invalid_task_id"
    assert api.delete("/api/tasks/x.y/").status_code == 400


def test_list_filters_by_status(api, small_png, burst_worker):
    first = submit_json(api, {"image_base64": b64(small_png), "filters": ["grayscale"]}).json()
    burst_worker()
    second = submit_json(api, {"image_base64": b64(small_png), "filters": ["blur"]}).json()
    everything = api.get("/api/tasks/").json()
    assert {t["task_id"] for t in everything["tasks"]} == {first["task_id"], second["task_id"]}
    queued = api.get("/api/tasks/", {"status": "queued"}).json()["tasks"]
    assert [t["task_id"] for t in queued] == [second["task_id"]]
    finished = api.get("/api/tasks/?status=finished&limit=5").json()["tasks"]
    assert [t["task_id"] for t in finished] == [first["task_id"]]
    assert api.get("/api/tasks/?status=bogus").status_code == 400
    assert api.get("/api/tasks/?limit=0").status_code == 400


def test_cancel_queued_then_conflicts(api, small_png, burst_worker):
    task = submit_json(api, {"image_base64": b64(small_png), "filters": ["grayscale"]}).json()
    response = api.delete(f"/api/tasks/{task['task_id']}/")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert burst_worker() == 0                       # nothing left to run
    again = api.delete(f"/api/tasks/{task['task_id']}/")
    assert again.status_code == 409 and "canceled" in error_of(again)["message"]
    done = submit_json(api, {"image_base64": b64(small_png), "filters": ["grayscale"]}).json()
    burst_worker()
    assert api.delete(f"/api/tasks/{done['task_id']}/").status_code == 409
    assert api.post(f"/api/tasks/{done['task_id']}/retry/").status_code == 409      # finished: nothing to retry


def test_canceled_task_can_be_retried_and_then_runs(api, small_png, burst_worker):
    task = submit_json(api, {"image_base64": b64(small_png), "filters": ["grayscale"]}).json()
    other = submit_json(api, {"image_base64": b64(small_png), "filters": ["blur"]}).json()   # shares the input
    assert api.delete(f"/api/tasks/{task['task_id']}/").status_code == 200
    retry = api.post(f"/api/tasks/{task['task_id']}/retry")          # original-style, no slash
    assert retry.status_code == 202 and retry.json()["status"] == "queued"
    assert burst_worker() == 2
    assert api.get(task["result_url"]).status_code == 200
    assert api.get(other["result_url"]).status_code == 200


def test_retry_after_the_input_was_freed_is_a_clear_409(api, small_png, burst_worker, monkeypatch):
    monkeypatch.setenv("PIXELFLEET_RETRY_WINDOW_S", "0")        # no retry window: freed at the cancel
    task = submit_json(api, {"image_base64": b64(small_png), "filters": ["grayscale"]}).json()
    assert api.delete(f"/api/tasks/{task['task_id']}/").status_code == 200   # its only task: input freed
    retry = api.post(f"/api/tasks/{task['task_id']}/retry/")
    assert retry.status_code == 409 and error_of(retry)["code"] == "input_gone", retry.content
    assert "submit the image again" in error_of(retry)["message"]


def test_failed_task_explains_itself_and_can_be_retried(api, burst_worker, monkeypatch):
    # With submit-time decoding switched off, corrupt pixel data (inside the compressed
    # stream, so the structural check passes) reaches the worker, which must fail the task
    # as a job_failure with a reason (not crash, not hang).
    monkeypatch.setenv("PIXELFLEET_VERIFY_DECODE_MAX_MEGAPIXELS", "0")
    noise = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    start = data.index(b"IDAT") + 40
    data[start:start + 64] = bytes(64)
    data = bytes(data)
    task = submit_json(api, {"image_base64": b64(data), "filters": ["grayscale"]}).json()
    burst_worker()
    status = api.get(f"/api/tasks/{task['task_id']}/").json()
    assert status["status"] == "failed" and status["failure_type"] == "job_failure", status
    assert status["failure_reason"]
    result = api.get(task["result_url"])
    assert result.status_code == 409 and "failed" in error_of(result)["message"]
    retry = api.post(f"/api/tasks/{task['task_id']}/retry/")
    assert retry.status_code == 202, retry.content
    assert retry.json()["status"] == "queued"
    queued = api.post(f"/api/tasks/{task['task_id']}/retry/")
    assert queued.status_code == 409


def test_original_status_path_and_distributed_body_as_written(api):
    original = {"filters": ["resize", "blur"],
                "filter_params": {"resize": {"width": 800, "height": 600}, "blur": {"radius": 3.0}}}
    response = api.post("/api/process-batch/distributed/", original, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["image"]["width"] == 3840                      # the default sample
    legacy = api.get(f"/api/task/{body['task_id']}/status/")
    assert legacy.status_code == 200 and legacy.json()["status"] == "queued"
    assert api.get(f"/api/task/{body['task_id']}/status").status_code == 200   # no slash too
    with_image = api.post("/api/process-batch/distributed", {**original, "image": b64(png_bytes())}, format="json")
    assert with_image.status_code == 202 and with_image.json()["image"]["width"] == 48


def test_sample_input_is_stored_once_and_restored_if_it_expired(api, redis_conn, burst_worker):
    from workers import settings
    first = submit_json(api, {"sample": "small", "filters": ["grayscale"]}).json()
    keys = list(redis_conn.scan_iter(settings.INPUT_KEY.format(digest="*")))
    assert len(keys) == 1 and redis_conn.ttl(keys[0]) > 0
    submit_json(api, {"sample": "small", "filters": ["blur"]})
    assert list(redis_conn.scan_iter(settings.INPUT_KEY.format(digest="*"))) == keys     # same bytes, same key
    redis_conn.delete(keys[0])                      # as if its TTL ran out
    third = submit_json(api, {"sample": "small", "filters": ["grayscale"]}).json()
    assert redis_conn.exists(keys[0])
    assert burst_worker() == 3
    assert api.get(third["result_url"]).status_code == 200
    # The re-stored bytes are the same content-addressed input, so the first task runs too.
    assert api.get(first["status_url"]).json()["status"] == "finished"


def test_result_can_be_deleted_once_fetched(api, small_png, burst_worker, redis_conn):
    from workers import storage
    task = submit_json(api, {"image_base64": b64(small_png), "filters": ["grayscale"]}).json()
    early = api.delete(task["result_url"])
    assert early.status_code == 409 and error_of(early)["code"] == "not_finished"
    burst_worker()
    assert api.get(task["result_url"]).status_code == 200
    assert 0 < redis_conn.ttl(storage.output_key(task["task_id"])) <= 3600      # kept an hour at most
    deleted = api.delete(task["result_url"])
    assert deleted.status_code == 204 and deleted.content == b""
    assert storage.load_output(redis_conn, task["task_id"]) is None
    gone = api.get(task["result_url"])
    assert gone.status_code == 404 and error_of(gone)["code"] == "result_expired"
    assert "deleted on request or expired" in error_of(gone)["message"]
    again = api.delete(task["result_url"])
    assert again.status_code == 404 and error_of(again)["code"] == "result_not_found"
    assert api.get(task["status_url"]).json()["status"] == "finished"          # the status stays
    unknown = api.delete("/api/tasks/no-such-task/result/")
    assert unknown.status_code == 404 and error_of(unknown)["code"] == "task_not_found"
    assert api.delete("/api/tasks/bad%20id/result/").status_code == 400
