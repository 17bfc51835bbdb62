"""Every file of ../shared/images through the API: valid ones are processed by a real
worker and come back decodable; invalid ones are refused at submit with a clear 4xx."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.api.conftest import error_of

EXPECTED_INVALID = {
    "broken.png": (422, "invalid_image"),
    "broken_data_stream.png": (422, "invalid_image"),      # caught by the submit-time decode
    "decompression_bomb.gif": (422, "too_many_pixels"),
}


def upload(api, path, **fields):
    handle = io.BytesIO(path.read_bytes())
    handle.name = path.name
    return api.post("/api/tasks/", {"image": handle, **fields}, format="multipart")


def test_every_valid_file_is_accepted_processed_and_downloadable(api, shared_images, burst_worker):
    files = sorted(p for p in (shared_images / "valid").iterdir() if p.is_file())
    assert len(files) >= 10
    accepted = {}
    for path in files:
        response = upload(api, path, filters='["resize", "grayscale"]',
                          filter_params='{"resize": {"width": 32, "height": 24}}')
        assert response.status_code == 202, (path.name, response.content)
        accepted[path.name] = response.json()
    assert burst_worker() == len(files)
    for name, task in accepted.items():
        status = api.get(task["status_url"]).json()
        assert status["status"] == "finished", (name, status)
        result = api.get(task["result_url"])
        assert result.status_code == 200, name
        assert Image.open(io.BytesIO(result.content)).size == (32, 24), name


def test_every_invalid_file_is_refused_at_submit(api, shared_images, redis_conn):
    files = sorted(p for p in (shared_images / "invalid").iterdir() if p.is_file())
    assert {p.name for p in files} >= set(EXPECTED_INVALID)
    for path in files:
        response = upload(api, path, filters="blur")
        assert 400 <= response.status_code < 500, (path.name, response.status_code, response.content)
        error = error_of(response)
        assert path.name in error["message"], error
        if path.name in EXPECTED_INVALID:
            assert (response.status_code, error["code"]) == EXPECTED_INVALID[path.name], (path.name, error)
    assert api.get("/api/tasks/").json()["count"] == 0


@pytest.mark.parametrize("name", sorted(EXPECTED_INVALID))
def test_invalid_files_as_base64_too(api, shared_images, name):
    import base64
    data = base64.b64encode((shared_images / "invalid" / name).read_bytes()).decode()
    response = api.post("/api/tasks/", {"image_base64": data, "filters": ["blur"]}, format="json")
    assert (response.status_code, error_of(response)["code"]) == EXPECTED_INVALID[name]
