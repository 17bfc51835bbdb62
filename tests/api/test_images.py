"""The sample-image endpoints: info, the 4k download (stored once in Redis), slow download."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.api.conftest import error_of
from workers import settings


def test_info_describes_the_default_sample_without_sending_it(api):
    body = api.get("/api/image/info/").json()
    assert (body["width"], body["height"], body["format"]) == (3840, 2160, "png")
    assert body["url"] == "/api/image/4k/" and "small" in body["samples"]
    assert body["bytes"] > 0 and len(body["sha256"]) == 64


def test_4k_download_is_stored_once_and_decodes(api, redis_conn):
    response = api.get("/api/image/4k/?format=png", HTTP_ACCEPT="image/png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (3840, 2160)
    assert redis_conn.get(settings.SAMPLE_KEY.format(name="4k")) == response.content
    assert api.get("/api/image/4k?format=png").content == response.content


def test_4k_download_is_jpeg_by_default_as_the_original_served_it(api, redis_conn):
    response = api.get("/api/image/4k/")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert 'filename="sample_4k.jpg"' in response["Content-Disposition"]
    image = Image.open(io.BytesIO(response.content))
    assert (image.format, image.size) == ("JPEG", (3840, 2160))
    assert api.get("/api/image/4k/?format=jpg").content == response.content     # encoded once, stored
    assert error_of(api.get("/api/image/4k/?format=gif"))["details"]["choices"] == ["jpeg", "jpg", "png"]


def test_slow_download_waits_within_bounds(api):
    response = api.get("/api/image/slow/?delay=0.2")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    png = api.get("/api/image/slow/?delay=0&format=png")
    assert png.status_code == 200 and png["Content-Type"] == "image/png"


@pytest.mark.parametrize("delay", ["11", "-1", "abc", "nan", "inf", ""])
def test_slow_download_refuses_bad_delays(api, delay):
    response = api.get(f"/api/image/slow/?delay={delay}")
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_input"
