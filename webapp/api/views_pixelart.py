"""POST /api/process: the original GPU pixel-art tool's one-call endpoint, on the fleet.

`{"image": "<base64>", "pixel_size": 8, "palette_size": 16, "dither": true}` becomes one
`pixelate` step (pixel_size -> block_size, dither true -> floyd-steinberg), goes through
the queue like any task, and the request waits - bounded by PIXELFLEET_PROCESS_WAIT
(default 120 s) or a lower `wait` in the body - for the result: 200 with the base64
image, or 202 with the task id and its status URL when it takes longer. A task no live
worker can run is answered 202 at once with the reason, rather than after the full wait.
"""
from __future__ import annotations

import base64
import time
from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api import inputs
from api.batch import capable_workers, wait_for_tasks
from api.exceptions import ApiError, BadRequest, Conflict, InvalidInput
from api.limits import long_requests
from api.serializers import ErrorSerializer, OutputOptionsSerializer, TaskAcceptedSerializer
from api.throttling import SubmitThrottle
from filters.errors import ValidationError as StepsError
from filters.registry import required_capabilities, validate_steps
from workers.routing import enqueue_task, queue_name
from workers.settings import env_float, get_redis
from workers.storage import load_output
from workers.storage_budget import check_capacity

DEFAULT_WAIT_S = 120.0
# The tool's field -> the registry's pixelate parameter. Other pixelate parameters
# (palette, method, outline, upscale) are accepted under their own names.
FIELD_TO_PARAM = {"pixel_size": "block_size", "palette_size": "palette_size", "dither": "dither"}
PASSTHROUGH = ("block_size", "palette", "method", "outline", "upscale")
DITHER_ALIASES = {True: "floyd-steinberg", False: "none", None: "none",
                  "true": "floyd-steinberg", "false": "none", "floyd_steinberg": "floyd-steinberg",
                  "floyd": "floyd-steinberg", "fs": "floyd-steinberg"}


class TaskFailed(ApiError):
    """The pixel-art task ran and failed (bad image data, filter refusal)."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "task_failed"


class TaskLost(ApiError):
    """The fleet failed the task (timeout, worker lost): retryable, not the client's fault."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "task_failed"


def max_wait_s() -> float:
    """PIXELFLEET_PROCESS_WAIT, read per request so an operator can change it."""
    return env_float("PIXELFLEET_PROCESS_WAIT", DEFAULT_WAIT_S)


INT_FIELDS = ("pixel_size", "palette_size", "block_size")
BOOL_FIELDS = {"true": True, "1": True, "yes": True, "on": True,
               "false": False, "0": False, "no": False, "off": False}


def from_form(field: str, value: Any) -> Any:
    """A multipart form sends every value as text: "8" -> 8, "true" -> True.

    Anything that does not read cleanly is passed on unchanged, so the registry's
    error still names the field and the value the client sent.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if field in INT_FIELDS and text.lstrip("-").isdigit():
        return int(text)
    if field in ("outline", "upscale") and text.lower() in BOOL_FIELDS:
        return BOOL_FIELDS[text.lower()]
    return value


def pixelate_params(body: dict) -> dict[str, Any]:
    """The tool's fields as pixelate parameters (validated afterwards by the registry)."""
    params: dict[str, Any] = {}
    for name in PASSTHROUGH:
        if name in body:
            params[name] = from_form(name, body[name])
    for field, param in FIELD_TO_PARAM.items():
        if field in body:
            params[param] = from_form(field, body[field])
    if "dither" in params:
        value = params["dither"]
        key = value.lower() if isinstance(value, str) else value
        if isinstance(key, (bool, str)) or key is None:
            params["dither"] = DITHER_ALIASES.get(key, value)
    return params


def pixelate_steps(body: dict) -> list:
    """One validated pixelate step; errors name the field the client sent (pixel_size)."""
    try:
        return validate_steps([{"filter": "pixelate", "params": pixelate_params(body)}])
    except StepsError as exc:
        message = exc.message
        for field, param in FIELD_TO_PARAM.items():
            if field != param and field in body:
                message = message.replace(f"pixelate.{param}", f"{field} (pixelate.{param})")
        raise StepsError(message, exc.details) from None


def wait_bound(body: dict) -> float:
    """The body's `wait` (seconds, may only lower the server's bound) or the bound."""
    bound = max_wait_s()
    value = body.get("wait")
    if value is None:
        return bound
    if isinstance(value, str):          # multipart forms carry text
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= bound:
        raise InvalidInput(f"wait must be a number of seconds from 0 to {bound:g}, got {value!r:.40}",
                           {"field": "wait", "max": bound})
    return float(value)


class PixelArtRequestSerializer(OutputOptionsSerializer):
    """Documents the body for the OpenAPI schema; parsing is api.inputs + the registry."""

    image = serializers.CharField(help_text="base64 image (data: URLs accepted)")
    pixel_size = serializers.IntegerField(required=False, help_text="pixelate.block_size (default 8)")
    palette_size = serializers.IntegerField(required=False, help_text="colours of the adaptive palette (16)")
    dither = serializers.JSONField(required=False,
                                   help_text="true (floyd-steinberg), false, or "
                                   "none|floyd-steinberg|floyd-steinberg-adaptive|bayer")
    palette = serializers.CharField(required=False, help_text="adaptive|none|gameboy|pico-8|cga|grayscale-4")
    outline = serializers.BooleanField(required=False)
    upscale = serializers.BooleanField(required=False)
    wait = serializers.FloatField(required=False, help_text="seconds to wait, at most PIXELFLEET_PROCESS_WAIT")


class PixelArtResultSerializer(serializers.Serializer):
    image = serializers.CharField(help_text="base64 result")
    content_type = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    task_id = serializers.CharField()
    processing_ms = serializers.FloatField(allow_null=True)
    queue_wait_ms = serializers.FloatField(allow_null=True)
    worker = serializers.CharField(allow_null=True)


class PixelArtView(APIView):
    """Pixel art in one call: submit, wait (bounded), answer with the image or a 202."""

    throttle_classes = [SubmitThrottle]

    @extend_schema(
        summary="Pixel art in one call (the original GPU pixel-art tool's endpoint)",
        description="Enqueues one pixelate task and waits up to PIXELFLEET_PROCESS_WAIT (120 s) for it: "
                    "200 with the base64 image, or 202 with the task id when it takes longer or no "
                    "live worker can run it.",
        request=PixelArtRequestSerializer,
        examples=[OpenApiExample("original body", request_only=True, value={
            "image": "<base64>", "pixel_size": 8, "palette_size": 16, "dither": True})],
        responses={200: PixelArtResultSerializer, 202: TaskAcceptedSerializer,
                   **{code: OpenApiResponse(ErrorSerializer) for code in (400, 401, 403, 409, 413, 422, 429, 503)}})
    def post(self, request: Request) -> Response:
        body = inputs.body_dict(request)
        if not body:
            raise BadRequest("empty body: send {\"image\": \"<base64>\", \"pixel_size\": 8, "
                             "\"palette_size\": 16, \"dither\": true}", code="empty_body")
        steps = pixelate_steps(body)
        options = inputs.parse_options(body)
        wait_s = wait_bound(body)
        images = inputs.parse_images(request, body)
        if len(images) != 1:
            raise InvalidInput(f"/api/process takes exactly one image, got {len(images)}; "
                               "use POST /api/tasks/ for several", {"images": len(images)})
        conn = get_redis()
        check_capacity(conn, len(images[0].data))          # 503 + Retry-After above the storage mark
        started = time.monotonic()
        with long_requests.slot("POST /api/process", expected_s=wait_s):   # waits up to wait_s
            task_id = enqueue_task(conn, None, steps, {**options, "source": "api-process"}, data=images[0].data)
            caps = frozenset(required_capabilities(steps, options["device"]))
            if not capable_workers(conn, caps):
                return self.pending(request, task_id, 0.0, f"no live worker has capabilities "
                                    f"{'+'.join(sorted(caps))}; the task waits in {queue_name(caps)}")
            state = wait_for_tasks(conn, [task_id], wait_s)[task_id] or {}
        if state.get("status") != "finished":
            return self.finished_badly(request, task_id, state, time.monotonic() - started)
        output = load_output(conn, task_id)
        if output is None:
            raise Conflict(f"task {task_id} finished but its result has expired", {"task_id": task_id})
        data, content_type = output
        result = state.get("result") or {}
        return Response({
            "image": base64.b64encode(data).decode("ascii"),
            "content_type": content_type, "format": result.get("format", options["format"]),
            "width": result.get("width"), "height": result.get("height"), "bytes": len(data),
            "task_id": task_id, "status": "finished",
            "processing_ms": state.get("processing_ms"), "queue_wait_ms": state.get("queue_wait_ms"),
            "total_ms": round((time.monotonic() - started) * 1000, 2),
            "worker": state.get("worker"), "backend": result.get("backend"),
            "params": dict(steps[0].params),
        })

    def finished_badly(self, request: Request, task_id: str, state: dict, waited_s: float) -> Response:
        """Failed -> 422 (the job's fault) or 503 (the fleet's); still running -> 202."""
        status_name = state.get("status")
        details = {k: state.get(k) for k in ("task_id", "failure_type", "failure_reason",
                                             "explanation", "error") if state.get(k) is not None}
        if status_name == "failed":
            reason = state.get("failure_reason") or state.get("error") or "unknown reason"
            error = TaskFailed if state.get("failure_type") in (None, "job_failure") else TaskLost
            raise error(f"task {task_id} failed ({state.get('failure_type') or 'job_failure'}): {reason}",
                        details or {"task_id": task_id})
        if status_name == "canceled":
            raise Conflict(f"task {task_id} was canceled before it ran", {"task_id": task_id})
        return self.pending(request, task_id, waited_s, state.get("waiting_reason"), state.get("status"))

    @staticmethod
    def pending(request: Request, task_id: str, waited_s: float, reason: str | None,
                task_state: str | None = "queued") -> Response:
        body = {"task_id": task_id, "status": task_state or "queued",
                "status_url": request.build_absolute_uri(f"/api/tasks/{task_id}/"),
                "result_url": request.build_absolute_uri(f"/api/tasks/{task_id}/result/"),
                "waited_s": round(waited_s, 2),
                "message": "not finished within the wait bound; poll status_url"}
        if reason:
            body["waiting_reason"] = reason
            body["message"] = reason
        return Response(body, status=status.HTTP_202_ACCEPTED)
