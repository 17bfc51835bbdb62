"""The sample-image endpoints of the original system: info, download, slow download.

The sample is generated deterministically (filters.samples) and stored once in Redis
(SAMPLE_KEY), so every API process and worker serves the same bytes.
"""
from __future__ import annotations

import time

from django.http import HttpResponse
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
from workers.storage import digest_of

MAX_DELAY_S = 10.0
IMAGE_RESPONSE = {(200, "image/png"): OpenApiResponse(description="The PNG sample."),
                  400: OpenApiResponse(ErrorSerializer), 503: OpenApiResponse(ErrorSerializer)}


def image_response(name: str) -> HttpResponse:
    data = sample_bytes(settings.get_redis(), name)
    response = HttpResponse(data, content_type="image/png")
    response["Content-Disposition"] = f'inline; filename="sample-{name}.png"'
    response["ETag"] = '"' + digest_of(data)[:32] + '"'
    response["Cache-Control"] = "public, max-age=3600"
    return response


class BinaryView(APIView):
    def perform_content_negotiation(self, request, force=False):
        # The body is a PNG whatever the Accept header says; errors still render as JSON.
        return super().perform_content_negotiation(request, force=True)


class ImageInfoView(APIView):
    @extend_schema(summary="Metadata of the default sample image", responses={200: ImageInfoSerializer})
    def get(self, request: Request) -> Response:
        name = samples.DEFAULT_SAMPLE
        data = sample_bytes(settings.get_redis(), name)
        info = image_io.probe_image(data)
        return Response({"name": name, "format": info.format, "width": info.width, "height": info.height,
                         "mode": info.mode, "bytes": len(data), "sha256": digest_of(data),
                         "url": f"/api/image/{name}/", "samples": list(samples.SAMPLE_NAMES)})


class Image4kView(BinaryView):
    @extend_schema(summary="Download the 3840x2160 sample", responses=IMAGE_RESPONSE)
    def get(self, request: Request) -> HttpResponse:
        return image_response("4k")


class SlowImageView(BinaryView):
    @extend_schema(summary="The 4k sample after a delay (0-10 s)",
                   parameters=[OpenApiParameter("delay", float, required=False, description="seconds, 0..10")],
                   responses={**IMAGE_RESPONSE, 429: OpenApiResponse(ErrorSerializer)})
    def get(self, request: Request) -> HttpResponse:
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
            return image_response("4k")
