"""The sample-image endpoints of the original system: info, download, slow download.

The sample is generated deterministically (filters.samples) and stored once in Redis
(SAMPLE_KEY), so every API process and worker serves the same bytes. The downloads are
JPEG by default, as the original system served them (its scripts save `sample_4k.jpg`);
`?format=png` gives the lossless PNG the tasks use as their input.
"""
from __future__ import annotations

import hashlib
import time

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.exceptions import InvalidInput
from api.inputs import sample_bytes
from api.limits import long_requests
from api.serializers import ErrorSerializer, ImageInfoSerializer
from filters import io as image_io
from filters import samples
from workers import settings

MAX_DELAY_S = 10.0
DOWNLOAD_FORMATS = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png"}
DEFAULT_DOWNLOAD_FORMAT = "jpeg"
JPEG_QUALITY = 90
IMAGE_RESPONSE = {(200, "image/jpeg"): OpenApiResponse(OpenApiTypes.BINARY, description="JPEG (default) or PNG (?format=png)"),
                  (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="JPEG (default) or PNG (?format=png)"),
                  400: OpenApiResponse(ErrorSerializer), 503: OpenApiResponse(ErrorSerializer)}
FORMAT_PARAMETER = OpenApiParameter("format", str, required=False, enum=sorted(DOWNLOAD_FORMATS),
                                    description="jpeg (default, as the original system served it) or png")


def download_format(request: Request) -> str:
    """?format=jpeg|jpg|png (default jpeg); anything else is a 400 naming the choices."""
    raw = request.query_params.get("format", DEFAULT_DOWNLOAD_FORMAT)
    fmt = DOWNLOAD_FORMATS.get(raw.strip().lower())
    if fmt is None:
        raise InvalidInput(f"format must be one of {', '.join(sorted(DOWNLOAD_FORMATS))}, got {raw!r:.40}",
                           {"field": "format", "choices": sorted(DOWNLOAD_FORMATS)})
    return fmt


def sample_jpeg(name: str) -> bytes:
    """The sample as JPEG, encoded once from the PNG and stored beside it in Redis."""
    conn = settings.get_redis()
    key = settings.SAMPLE_KEY.format(name=f"{name}.jpeg")
    data = conn.get(key)
    if data is None:
        data = image_io.encode_image(image_io.decode_image(sample_bytes(conn, name)), "jpeg", JPEG_QUALITY)
        conn.set(key, data, nx=True)
    return data


def image_response(name: str, fmt: str = "png") -> HttpResponse:
    data = sample_jpeg(name) if fmt == "jpeg" else sample_bytes(settings.get_redis(), name)
    response = HttpResponse(data, content_type=image_io.CONTENT_TYPES[fmt])
    filename = f"sample_{name}.jpg" if fmt == "jpeg" else f"sample-{name}.png"
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    response["ETag"] = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    response["Cache-Control"] = "public, max-age=3600"
    return response


class BinaryView(APIView):
    def perform_content_negotiation(self, request, force=False):
        # The body is an image whatever the Accept header says; errors still render as JSON.
        return super().perform_content_negotiation(request, force=True)


class ImageInfoView(APIView):
    @extend_schema(summary="Metadata of the default sample image", responses={200: ImageInfoSerializer})
    def get(self, request: Request) -> Response:
        name = samples.DEFAULT_SAMPLE
        data = sample_bytes(settings.get_redis(), name)
        info = image_io.probe_image(data)
        return Response({"name": name, "format": info.format, "width": info.width, "height": info.height,
                         "mode": info.mode, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                         "url": f"/api/image/{name}/", "samples": list(samples.SAMPLE_NAMES)})


class Image4kView(BinaryView):
    @extend_schema(summary="Download the 3840x2160 sample (JPEG; ?format=png for PNG)",
                   parameters=[FORMAT_PARAMETER], responses=IMAGE_RESPONSE)
    def get(self, request: Request) -> HttpResponse:
        return image_response("4k", download_format(request))


class SlowImageView(BinaryView):
    @extend_schema(summary="The 4k sample after a delay (0-10 s)",
                   parameters=[OpenApiParameter("delay", float, required=False, description="seconds, 0..10"),
                               FORMAT_PARAMETER],
                   responses={**IMAGE_RESPONSE, 429: OpenApiResponse(ErrorSerializer)})
    def get(self, request: Request) -> HttpResponse:
        fmt = download_format(request)
        raw = request.query_params.get("delay", "1")
        try:
            delay = float(raw)
        except ValueError:
            delay = float("nan")
        if not 0 <= delay <= MAX_DELAY_S:     # also refuses nan and inf
            raise InvalidInput(f"delay must be a number of seconds from 0 to {MAX_DELAY_S:g}, got {raw!r:.40}",
                               {"field": "delay", "max": MAX_DELAY_S})
        with long_requests.slot("GET /api/image/slow/", expected_s=delay):
            time.sleep(delay)
            return image_response("4k", fmt)
