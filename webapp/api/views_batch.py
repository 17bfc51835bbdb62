"""POST /api/process-batch/<mode>/: the same pipeline over a batch in each execution mode.

Modes: sequential, threading, multiprocessing, compare (those three), compare-all (plus
the fleet, "distributed"), stress (num_iterations runs with latency statistics). The
body is the original system's `{"filters": [...], "filter_params": {...}}` (or `steps`),
parsed by api.inputs like every other endpoint; the images are the `small` sample by
default (fast), `"sample": "4k"` or a base64 `image` when asked.
"""
from __future__ import annotations

import os
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api import batch, inputs
from api.exceptions import InvalidInput, PayloadTooLarge
from api.limits import long_requests
from api.serializers import ErrorSerializer, PipelineSerializer
from api.throttling import SubmitThrottle
from filters.io import decode_image
from workers.settings import env_float, get_redis

DEFAULT_IMAGE_COUNT = 4
MAX_IMAGE_COUNT = 32
MAX_BATCH_MEGAPIXELS = 40          # 4 x 4k; keeps one request to seconds, not minutes
MAX_BATCH_OUTPUT_MEGAPIXELS = 100  # outputs too: a resize may grow every image
DEFAULT_ITERATIONS = 10
MAX_ITERATIONS = 20
BATCH_EXPECTED_S = 5.0             # a typical batch, for the Retry-After of a refused one
DEFAULT_DISTRIBUTED_WAIT_S = 30.0
COMPARE_MODES = {"compare": batch.LOCAL_MODES, "compare-all": batch.LOCAL_MODES}


def bounded_int(body: dict, field: str, default: int, low: int, high: int) -> int:
    """An integer body field within [low, high], else 400 naming the field and range."""
    value = body.get(field, default)
    if value is None:
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{field} must be an integer from {low} to {high}, got {value!r:.40}",
                           {"field": field, "min": low, "max": high})
    return value


def bounded_float(body: dict, field: str, default: float, low: float, high: float) -> float:
    """A number body field within [low, high], else 400 naming the field and range."""
    value = body.get(field, default)
    if value is None:
        return default
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise InvalidInput(f"{field} must be a number from {low:g} to {high:g}, got {value!r:.40}",
                           {"field": field, "min": low, "max": high})
    return float(value)


def batch_images(request: Request, body: dict, count_field: str, default_count: int,
                 max_count: int) -> tuple[list, list[bytes], dict]:
    """The batch: the request's image(s) (default the `small` sample) repeated to `count`.

    Returns decoded arrays, their encoded bytes (for the fleet) and a description.
    """
    found = inputs.parse_images(request, body, default_sample="small")
    count = bounded_int(body, count_field, default_count if len(found) == 1 else len(found), 1, max_count)
    chosen = [found[i % len(found)] for i in range(count)]
    megapixels = sum(img.info.width * img.info.height for img in chosen) / 1e6
    if megapixels > MAX_BATCH_MEGAPIXELS:
        raise PayloadTooLarge(
            f"the batch holds {megapixels:.1f} megapixels ({count} image(s)); at most "
            f"{MAX_BATCH_MEGAPIXELS} per request - lower {count_field}",
            {"megapixels": round(megapixels, 1), "limit": MAX_BATCH_MEGAPIXELS}, code="batch_too_large")
    decoded = {id(img): decode_image(img.data) for img in found}
    arrays = [decoded[id(img)] for img in chosen]
    description = {"count": count, "sources": sorted({img.label for img in found}),
                   "width": found[0].info.width, "height": found[0].info.height,
                   "megapixels": round(megapixels, 2)}
    return arrays, [img.data for img in chosen], description


def warm_and_check(first, steps: list, count: int) -> float:
    """The untimed warm-up run; then refuse (413) a batch whose outputs would be too big.

    Input size is checked before anything runs; the output size is known only once the
    pipeline ran (a resize can grow each image up to the engine's limit), so the first
    image's output stands for all of them (they are copies, or sized alike).
    """
    ms, shape = batch.warm_here(first, steps)
    output_mp = shape[0] * shape[1] * count / 1e6
    if output_mp > MAX_BATCH_OUTPUT_MEGAPIXELS:
        raise PayloadTooLarge(
            f"the batch would produce {output_mp:.1f} megapixels ({count} x {shape[1]}x{shape[0]}); "
            f"at most {MAX_BATCH_OUTPUT_MEGAPIXELS} per request - lower the count or the output size",
            {"output_megapixels": round(output_mp, 1), "limit": MAX_BATCH_OUTPUT_MEGAPIXELS},
            code="batch_too_large")
    return round(ms, 2)


class BatchRequestSerializer(PipelineSerializer):
    """Documents the body for the OpenAPI schema; api.inputs does the parsing."""

    image_count = serializers.IntegerField(min_value=1, max_value=MAX_IMAGE_COUNT, required=False,
                                           help_text=f"batch size (default {DEFAULT_IMAGE_COUNT}); "
                                                     f"at most {MAX_BATCH_MEGAPIXELS} megapixels in all")
    sample = serializers.ChoiceField(choices=["small", "4k"], required=False, help_text="default small")
    image = serializers.CharField(required=False, help_text="base64 image instead of a sample")
    num_iterations = serializers.IntegerField(min_value=1, max_value=MAX_ITERATIONS, required=False,
                                              help_text=f"stress only (default {DEFAULT_ITERATIONS})")
    execution_mode = serializers.ChoiceField(choices=list(batch.LOCAL_MODES), required=False,
                                             help_text="stress only (default sequential)")
    wait = serializers.FloatField(min_value=0, max_value=120, required=False,
                                  help_text="compare-all only: bound on waiting for the fleet, s")


ORIGINAL_EXAMPLE = OpenApiExample("original body", request_only=True, value={
    "filters": ["resize", "blur"],
    "filter_params": {"resize": {"width": 800, "height": 600}, "blur": {"radius": 3.0}}})
ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (400, 401, 403, 413, 415, 422, 429, 503)}


class BatchView(APIView):
    """One view for every mode; `mode` is bound per URL in urls_ops.py."""

    mode: str = "compare"
    throttle_classes = [SubmitThrottle]

    @extend_schema(
        summary="Run a pipeline in-process in an execution mode and time it",
        description="sequential | threading | multiprocessing | compare | compare-all (+ the fleet) | "
                    "stress; per-mode total_ms, per-image ms and speed-ups vs sequential. "
                    "See docs/api_ops.md.",
        request=BatchRequestSerializer, examples=[ORIGINAL_EXAMPLE],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="timings per mode"), **ERRORS})
    def post(self, request: Request) -> Response:
        # In-process image work holds this thread for seconds: a bounded number at once.
        with long_requests.slot(f"POST /api/process-batch/{self.mode}", expected_s=BATCH_EXPECTED_S):
            return self.run(request)

    def run(self, request: Request) -> Response:
        body = inputs.body_dict(request)
        steps = inputs.parse_steps(body)
        pipeline = [{"filter": s.name, "params": dict(s.params)} for s in steps]
        response: dict[str, Any] = {"mode": self.mode, "pipeline": pipeline,
                                    "cpu_count": os.cpu_count(), "backend": "cpu"}
        if self.mode == "stress":
            iterations = bounded_int(body, "num_iterations", DEFAULT_ITERATIONS, 1, MAX_ITERATIONS)
            run_mode = body.get("execution_mode", "sequential")
            if run_mode not in batch.LOCAL_MODES:
                raise InvalidInput(f"execution_mode must be one of {', '.join(batch.LOCAL_MODES)}, "
                                   f"got {run_mode!r:.40}", {"field": "execution_mode"})
            arrays, _, described = batch_images(request, body, "image_count", 1, MAX_IMAGE_COUNT)
            response["images"] = described
            response["warmup_ms"] = warm_and_check(arrays[0], steps, iterations)
            response["stress"] = batch.stress(run_mode, arrays[0], steps, iterations)
            return Response(response)

        arrays, encoded, described = batch_images(request, body, "image_count",
                                                  DEFAULT_IMAGE_COUNT, MAX_IMAGE_COUNT)
        response["images"] = described
        response["warmup_ms"] = warm_and_check(arrays[0], steps, len(arrays))
        modes = COMPARE_MODES.get(self.mode, (self.mode,))
        results = batch.compare(modes, arrays, steps)
        if self.mode == "compare-all":
            wait_s = bounded_float(body, "wait", env_float("PIXELFLEET_BATCH_WAIT",
                                                           DEFAULT_DISTRIBUTED_WAIT_S), 0, 120)
            fleet = batch.run_distributed(get_redis(), encoded, steps, wait_s)
            results["distributed"] = fleet.to_dict(results["sequential"]["total_ms"])
        response["results"] = results
        timed = {m: r["total_ms"] for m, r in results.items() if not r.get("error") and r["total_ms"]}
        response["fastest"] = min(timed, key=timed.get) if len(timed) > 1 else None
        response["note"] = ("total_ms is wall time for the whole batch in this API process; "
                            "speedup_vs_sequential = sequential total_ms / this mode's total_ms, "
                            "measured in this same request. warmup_ms (one untimed run of the "
                            "first image: numba compile/cache load, first-touch costs) is excluded.")
        return Response(response)
