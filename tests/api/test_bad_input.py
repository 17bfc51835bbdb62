"""Whatever a client sends, the answer is a 4xx with the error shape, and nothing is queued."""
from __future__ import annotations

import base64
import io

import pytest
from django.test import override_settings

from tests.api.conftest import error_of, png_bytes
from workers import settings

GOOD_PNG = base64.b64encode(png_bytes(8, 8)).decode()
PIPE = {"filters": ["blur"]}

# (name, body, expected status, expected code, words the message must contain)
JSON_CASES = [
    ("no pipeline", {"image_base64": GOOD_PNG}, 400, "invalid_steps", ["filters"]),
    ("unknown filter", {"image_base64": GOOD_PNG, "filters": ["vignette"]}, 400, "invalid_steps", ["vignette"]),
    ("unknown parameter", {"image_base64": GOOD_PNG, "filters": ["blur"], "filter_params": {"blur": {"sigma": 2}}},
     400, "invalid_steps", ["sigma"]),
    ("out of range", {"image_base64": GOOD_PNG, "filters": ["blur"], "filter_params": {"blur": {"radius": 80}}},
     400, "invalid_steps", ["blur.radius", "80"]),
    ("wrong param type", {"image_base64": GOOD_PNG, "filters": ["blur"], "filter_params": {"blur": {"radius": "big"}}},
     400, "invalid_steps", ["radius"]),
    ("filters not a list", {"image_base64": GOOD_PNG, "filters": "blur"}, 400, "invalid_steps", ["filters"]),
    ("filter_params not an object", {"image_base64": GOOD_PNG, "filters": ["blur"], "filter_params": [1]},
     400, "invalid_steps", ["filter_params"]),
    ("params for an unlisted filter", {"image_base64": GOOD_PNG, "filters": ["blur"],
                                       "filter_params": {"sharpen": {"amount": 1}}}, 400, "invalid_steps", ["sharpen"]),
    ("steps and filters", {"image_base64": GOOD_PNG, "filters": ["blur"], "steps": [{"filter": "blur"}]},
     400, "invalid_steps", ["not both"]),
    ("steps not a list", {"image_base64": GOOD_PNG, "steps": "blur"}, 400, "invalid_steps", ["steps"]),
    ("empty steps", {"image_base64": GOOD_PNG, "steps": []}, 400, "invalid_steps", []),
    ("33 steps", {"image_base64": GOOD_PNG, "steps": [{"filter": "grayscale"}] * 33}, 400, "invalid_steps", ["32"]),
    ("bad format", {"image_base64": GOOD_PNG, **PIPE, "format": "gif"}, 400, "invalid_input", ["format"]),
    ("bad quality", {"image_base64": GOOD_PNG, **PIPE, "quality": 0}, 400, "invalid_input", ["quality"]),
    ("quality as text", {"image_base64": GOOD_PNG, **PIPE, "quality": "high"}, 400, "invalid_input", ["quality"]),
    ("quality as bool", {"image_base64": GOOD_PNG, **PIPE, "quality": True}, 400, "invalid_input", ["quality"]),
    ("bad device", {"image_base64": GOOD_PNG, **PIPE, "device": "tpu"}, 400, "invalid_input", ["device"]),
    ("no image", PIPE, 400, "no_image", ["image"]),
    ("bad base64", {"image_base64": "not base64!!", **PIPE}, 400, "invalid_base64", ["base64"]),
    ("empty base64", {"image_base64": "", **PIPE}, 400, "invalid_base64", ["empty"]),
    ("base64 of a number", {"image_base64": 12, **PIPE}, 400, "invalid_input", ["image_base64"]),
    ("list with a number", {"image_base64": [GOOD_PNG, 7], **PIPE}, 400, "invalid_input", ["image_base64[1]"]),
    ("base64 of text", {"image_base64": base64.b64encode(b"hello, world").decode(), **PIPE},
     422, "invalid_image", ["image_base64"]),
    ("unknown sample", {"sample": "8k", **PIPE}, 400, "unknown_sample", ["8k", "4k"]),
    ("sample as a path", {"sample": "../../etc/passwd", **PIPE}, 400, "unknown_sample", ["passwd"]),
    ("sample not a string", {"sample": ["4k"], **PIPE}, 400, "unknown_sample", []),
    ("misspelt field", {"image_base64": GOOD_PNG, "filter": ["blur"]}, 400, "unknown_field", ["'filter'"]),
    ("images in json", {"images": [GOOD_PNG], **PIPE}, 400, "invalid_input", ["image_base64"]),
    ("too many images", {"image_base64": [GOOD_PNG] * 17, **PIPE}, 413, "too_many_images", ["16"]),
]


@pytest.mark.parametrize("name,body,status,code,words", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_json_matrix(api, redis_conn, name, body, status, code, words):
    response = api.post("/api/tasks/", body, format="json")
    assert response.status_code == status, response.content
    error = error_of(response)
    assert error["code"] == code, error
    for word in words:
        assert word in error["message"], error
    assert redis_conn.zcard(settings.TASK_INDEX_KEY) == 0          # nothing was enqueued
    assert not list(redis_conn.scan_iter(settings.INPUT_KEY.format(digest="*")))   # nor stored


RAW_CASES = [
    ("malformed json", b'{"filters": ["blur"', "application/json", 400, "malformed_request"),
    ("json array", b'[1, 2]', "application/json", 400, "malformed_request"),
    ("json string", b'"blur"', "application/json", 400, "malformed_request"),
    ("empty json body", b"", "application/json", 400, "invalid_steps"),
    ("not utf-8", b'{"filters": ["\xff"]}', "application/json", 400, "malformed_request"),
    ("plain text", b"blur please", "text/plain", 415, "unsupported_media_type"),
    ("xml", b"<filters/>", "application/xml", 415, "unsupported_media_type"),
    ("broken multipart", b"--xx\r\nContent-Disposition: form-data; name=", "multipart/form-data; boundary=xx",
     400, None),
    ("multipart without boundary", b"abc", "multipart/form-data", 400, "malformed_request"),
]


@pytest.mark.parametrize("name,data,content_type,status,code", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_raw_body_matrix(api, name, data, content_type, status, code):
    response = api.generic("POST", "/api/tasks/", data, content_type=content_type)
    assert response.status_code == status, response.content
    error = error_of(response)
    if code:
        assert error["code"] == code, error


def test_every_submitting_endpoint_refuses_garbage_with_4xx(api):
    for path in ("/api/tasks/", "/api/tasks", "/api/process-batch/distributed/"):
        for data, content_type in ((b"{", "application/json"), (b"[]", "application/json"),
                                   (b'{"filters": 5}', "application/json"), (b"x", "text/plain")):
            response = api.generic("POST", path, data, content_type=content_type)
            assert 400 <= response.status_code < 500, (path, data, response.content)
            error_of(response)


def test_multipart_non_image_file_is_422(api):
    upload = io.BytesIO(b"%PDF-1.4 definitely not an image")
    upload.name = "doc.pdf"
    response = api.post("/api/tasks/", {"image": upload, "filters": "blur"}, format="multipart")
    assert response.status_code == 422
    assert "doc.pdf" in error_of(response)["message"]


def test_multipart_empty_file_is_refused(api):
    upload = io.BytesIO(b"")
    upload.name = "empty.png"
    response = api.post("/api/tasks/", {"image": upload, "filters": "blur"}, format="multipart")
    assert 400 <= response.status_code < 500
    error_of(response)


def test_body_over_the_request_limit_is_413_before_reading(api):
    with override_settings(MAX_REQUEST_BYTES=1000):
        response = api.post("/api/tasks/", {"image_base64": GOOD_PNG * 20, **PIPE}, format="json")
    assert response.status_code == 413
    assert "1000" in error_of(response)["message"]


def test_image_over_the_byte_limit_is_413_with_the_limit(api, monkeypatch):
    from filters import io as image_io
    monkeypatch.setattr(image_io, "MAX_BYTES", 100)
    response = api.post("/api/tasks/", {"image_base64": base64.b64encode(png_bytes(64, 64)).decode(), **PIPE},
                        format="json")
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "image_too_large" and "100" in error["message"]
    upload = io.BytesIO(png_bytes(64, 64))
    upload.name = "big.png"
    response = api.post("/api/tasks/", {"image": upload, **PIPE}, format="multipart")
    assert response.status_code == 413 and "big.png" in error_of(response)["message"]


def test_unknown_url_and_wrong_method_are_json(api):
    response = api.get("/api/nothing-here/")
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
    response = api.put("/api/tasks/", {}, format="json")
    assert response.status_code == 405 and error_of(response)["code"] == "method_not_allowed"
    assert api.get("/api/filters/", HTTP_ACCEPT="application/xml").status_code == 406


def test_redis_down_is_503_json_not_a_crash(api, monkeypatch):
    from workers.embedded_redis import free_port
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    response = api.post("/api/tasks/", {"sample": "small", **PIPE}, format="json")
    assert response.status_code == 503
    assert error_of(response)["code"] == "redis_unavailable"


ODD_VALUES = [None, 0, -1, 1.5, True, "", "x" * 300, [], {}, [None], {"a": None}, [[]], "💥", 10**30]
FIELDS = ["image_base64", "image", "sample", "filters", "filter_params", "steps", "format", "quality", "device"]


def test_no_field_value_can_cause_a_5xx(api):
    """Every field set to every odd JSON value: a 202 or a 4xx with the error shape, never a 5xx."""
    base = {"sample": "small", "filters": ["grayscale"]}
    seen = set()
    for field in FIELDS:
        for value in ODD_VALUES:
            body = {**base, field: value}
            if field == "steps":
                body.pop("filters")
            response = api.post("/api/tasks/", body, format="json")
            assert response.status_code == 202 or 400 <= response.status_code < 500, (field, value, response.content)
            if response.status_code != 202:
                error_of(response)
            seen.add(response.status_code)
    assert 202 in seen and 400 in seen


def test_a_bug_is_a_json_500_never_an_html_page(api, monkeypatch):
    # Not client input: a server-side fault, simulated in the storage layer (Redis stays real).
    from workers import storage

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")
    monkeypatch.setattr(storage, "acquire_input", broken)
    response = api.post("/api/tasks/", {"sample": "small", **PIPE}, format="json")
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert error_of(response)["code"] == "internal_error"
    assert "simulated" not in response.content.decode()          # no internals leak to the client


def test_malformed_content_length_is_400(api):
    response = api.generic("POST", "/api/tasks/", b"{}", content_type="application/json", CONTENT_LENGTH="abc")
    assert response.status_code == 400 and error_of(response)["code"] == "bad_request"


@pytest.mark.parametrize("path", ["/api/tasks/", "/api/process-batch/sequential/", "/api/process"])
def test_json_sent_as_a_form_is_415_saying_so(api, path):
    """`curl -d '{…}'` labels JSON application/x-www-form-urlencoded: say that, not "no pipeline"."""
    body = b'{"sample":"small","steps":[{"filter":"blur","params":{"radius":2}}]}'
    response = api.generic("POST", path, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415, response.content
    error = error_of(response)
    assert error["code"] == "unsupported_media_type"
    assert "application/x-www-form-urlencoded" in error["message"] and "Content-Type: application/json" in error["message"]
    assert error["details"]["content_type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "image/png"])
def test_an_unread_content_type_is_415_naming_it(api, content_type):
    response = api.generic("POST", "/api/tasks/", b"blur please", content_type=content_type)
    error = error_of(response)
    assert response.status_code == 415 and content_type in error["message"], error
    assert error["details"]["content_type"] == content_type


def test_a_real_form_still_works(api):
    response = api.generic("POST", "/api/tasks/", b"sample=small&filters=blur,grayscale",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 202, response.content
