"""Task endpoints: submit, list, status, result, cancel, retry — and the original paths.

A submit checks everything a client can get wrong (image bytes and megapixels, decode,
filters and parameters, options) before anything is stored or enqueued, so a refusal
leaves nothing behind. Task ids in URLs are checked for RQ's id alphabet before Redis
is touched.
"""
from __future__ import annotations

import re
from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api import fleet_cache, inputs
from api.exceptions import Conflict, InvalidInput, InvalidTaskId, NotFound
from api.serializers import (TASK_STATUSES, DistributedBatchSerializer, ErrorSerializer, TaskAcceptedSerializer,
                             TaskBatchAcceptedSerializer, TaskListSerializer, TaskStatusSerializer,
                             TaskSubmitSerializer)
from api.throttling import SubmitThrottle
from filters import registry
from workers import routing, settings, status as task_state, storage, storage_budget
from workers.logs import get_logger, log_event

log = get_logger("webapp.tasks")
TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")     # RQ's job id alphabet (rq.job.JOB_ID_PATTERN)
ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (400, 401, 403, 404, 409, 413, 415, 422, 429, 503)}


def check_task_id(task_id: str) -> str:
    if not TASK_ID.match(task_id):
        raise InvalidTaskId(f"{task_id!r:.80} is not a task id (letters, digits, '_' and '-', at most 128)")
    return task_id


def wait_parameter(answer: str) -> OpenApiParameter:
    """`?wait=S` (api.views_wait does the waiting; documented on the DRF views it fronts)."""
    return OpenApiParameter("wait", float, required=False,
                            description=f"Seconds (0 to {settings.MAX_WAIT}) to wait for the task to end; {answer}")


def task_urls(task_id: str) -> dict[str, str]:
    return {"status_url": f"/api/tasks/{task_id}/", "result_url": f"/api/tasks/{task_id}/result/"}


SUBMIT_FIELDS = ("image", "images", "image_base64", "sample", "filters", "filter_params", "steps",
                 "format", "quality", "device")


def check_fields(request: Request, body: dict[str, Any]) -> None:
    """A misspelt field would otherwise be ignored silently (e.g. "filter" for "filters")."""
    unknown = sorted(set(body) - set(SUBMIT_FIELDS))
    if unknown:
        raise InvalidInput(f"unknown field(s) {', '.join(map(repr, unknown))}; accepted: {', '.join(SUBMIT_FIELDS)}",
                           {"unknown": unknown}, code="unknown_field")
    if "images" in body and "images" not in request.FILES:
        raise InvalidInput("'images' is for multipart file uploads; send base64 images as a list in 'image_base64'",
                           {"field": "images"})


def submit(request: Request, *, default_sample: str | None = None, source: str = "api",
           strict: bool = True) -> Response:
    """Parse, check, store and enqueue: 202 with one task, or with a list for several images.

    `strict` refuses unknown fields; the original system's path stays lenient so scripts
    written for it keep working whatever else they send.
    """
    body = inputs.body_dict(request)
    if strict:
        check_fields(request, body)
    steps = inputs.parse_steps(body)
    options = inputs.parse_options(body)
    conn = settings.get_redis()
    images = inputs.parse_images(request, body, default_sample=default_sample, conn=conn)
    if len(images) > 1 and getattr(request, "pixelfleet_wait_one", False):   # set by views_wait
        raise InvalidInput(f"?wait answers with one image; this request has {len(images)}. Submit them "
                           "without wait, or one per request", {"field": "wait", "images": len(images)},
                           code="invalid_wait")
    # Above the storage high-water mark: 503 + Retry-After, nothing stored (samples are already).
    reserves = [storage_budget.bound_for_size(i.info.width, i.info.height, steps, options["format"]) for i in images]
    storage_budget.check_capacity(conn, sum(len(i.data) for i in images if not i.digest), sum(reserves))
    caps = registry.required_capabilities(steps, options["device"])
    # One look at the registry for the whole request: the same answer for every image.
    waiting = task_state.waiting_reason(caps, *fleet_cache.fleet())
    accepted = []
    for image, reserve in zip(images, reserves):
        task_id = routing.enqueue_task(conn, image.digest, steps, {**options, "source": source}, data=image.data,
                                       reserve_bytes=reserve)
        entry: dict[str, Any] = {
            "task_id": task_id, "status": "queued", "queue": routing.queue_name(caps),
            "capabilities": sorted(caps), "image": _image_summary(image), **task_urls(task_id),
        }
        if waiting:
            entry["waiting_reason"] = waiting
        log_event(log, "submitted", task=task_id, queue=entry["queue"], source=source,
                  image=f"{image.info.width}x{image.info.height}", bytes=len(image.data), steps=len(steps))
        accepted.append(entry)
    if len(accepted) == 1:
        return Response(accepted[0], status=http.HTTP_202_ACCEPTED,
                        headers={"Location": accepted[0]["status_url"]})
    return Response({"tasks": accepted, "count": len(accepted)}, status=http.HTTP_202_ACCEPTED)


def _image_summary(image: inputs.ImageInput) -> dict[str, Any]:
    info = image.info
    return {"source": image.label, "format": getattr(info, "format", None), "width": info.width,
            "height": info.height, "mode": getattr(info, "mode", None), "bytes": len(image.data)}


def task_not_found(task_id: str) -> NotFound:
    return NotFound(f"no task {task_id!r}: unknown, or expired (finished tasks are kept "
                    f"{settings.RESULT_TTL} s, failed ones {settings.FAILURE_TTL} s)", code="task_not_found")


def load_status(task_id: str) -> dict[str, Any]:
    state = task_state.task_status(settings.get_redis(), check_task_id(task_id))
    if state is None:
        raise task_not_found(task_id)
    return state


class TaskListView(APIView):
    """GET: recent tasks, optionally by status. POST: submit one task per image."""

    throttle_classes = [SubmitThrottle]

    @extend_schema(
        summary="List recent tasks", operation_id="tasks_list",
        parameters=[OpenApiParameter("status", str, enum=list(TASK_STATUSES), required=False),
                    OpenApiParameter("limit", int, required=False, description="1..1000, default 100")],
        responses={200: TaskListSerializer, **ERRORS})
    def get(self, request: Request) -> Response:
        wanted = request.query_params.get("status") or None
        if wanted is not None and wanted not in TASK_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(TASK_STATUSES)}, got {wanted!r:.40}",
                               {"field": "status"})
        raw_limit = request.query_params.get("limit", "100")
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
            raise InvalidInput(f"limit must be an integer from 1 to 1000, got {raw_limit!r:.40}", {"field": "limit"})
        tasks = task_state.list_tasks(settings.get_redis(), status=wanted, limit=int(raw_limit))
        return Response({"tasks": tasks, "count": len(tasks)})

    @extend_schema(
        summary="Submit images to a filter pipeline", operation_id="tasks_submit",
        description="Multipart (`image` / `images` files) or JSON (`image_base64`, string or list), or a `sample` "
                    "name. Steps as `filters` + `filter_params` or ordered `steps`. One task per image.",
        parameters=[wait_parameter("one image only: 200 with the result image when it finishes in time, "
                                   "422 task_failed when it fails, else the usual 202.")],
        request={"application/json": TaskSubmitSerializer, "multipart/form-data": TaskSubmitSerializer},
        responses={(200, "image/*"): OpenApiResponse(description="With `wait`: the result image."),
                   202: PolymorphicProxySerializer(
            component_name="TaskSubmitAccepted", serializers=[TaskAcceptedSerializer, TaskBatchAcceptedSerializer],
            resource_type_field_name=None), **ERRORS})
    def post(self, request: Request) -> Response:
        return submit(request, source="api")


class TaskDetailView(APIView):
    """GET: the task's status. DELETE: cancel it while it is still queued."""

    @extend_schema(summary="Task status", operation_id="tasks_status",
                   parameters=[wait_parameter("the status once it ended, or as it is after that many seconds.")],
                   responses={200: TaskStatusSerializer, **ERRORS})
    def get(self, request: Request, task_id: str) -> Response:
        return Response(load_status(task_id))

    @extend_schema(summary="Cancel a queued task", operation_id="tasks_cancel", responses={200: TaskStatusSerializer, **ERRORS})
    def delete(self, request: Request, task_id: str) -> Response:
        state = load_status(task_id)
        if state["status"] != "queued":
            raise Conflict(f"task {task_id} is {state['status']}; only a queued task can be canceled",
                           {"status": state["status"]}, code="not_cancelable")
        return Response(task_state.cancel_task(settings.get_redis(), task_id))


class TaskRetryView(APIView):
    """POST: put a failed (or canceled) task back on its queue."""

    throttle_classes = [SubmitThrottle]

    @extend_schema(summary="Retry a failed task", request=None, responses={202: TaskStatusSerializer, **ERRORS})
    def post(self, request: Request, task_id: str) -> Response:
        state = load_status(task_id)
        if state["status"] not in ("failed", "canceled"):
            raise Conflict(f"task {task_id} is {state['status']}; only a failed or canceled task can be retried",
                           {"status": state["status"]}, code="not_retryable")
        storage_budget.check_capacity(settings.get_redis())   # a retry is new work: same mark as a submit
        return Response(task_state.retry_task(settings.get_redis(), task_id), status=http.HTTP_202_ACCEPTED)


def deliverable_result(task_id: str, state: dict[str, Any], found: tuple[bytes, str] | None) -> tuple[bytes, str]:
    """The stored result of a finished task, or the refusal: 409 not_finished (with why),
    404 result_expired. Shared by this view and the ASGI fast path (api.asgi_status)."""
    if state["status"] != "finished":
        reason = state.get("failure_reason") or state.get("error") or state.get("waiting_reason")
        message = f"task {task_id} is {state['status']}, not finished"
        raise Conflict(f"{message}: {reason}" if reason else message,
                       {"status": state["status"], "status_url": task_urls(task_id)["status_url"]},
                       code="not_finished")
    if found is None:
        raise NotFound(f"task {task_id} finished but its result is gone: deleted on request or expired "
                       f"(results are kept {settings.OUTPUT_TTL} s); submit the image again",
                       code="result_expired")
    return found


def result_headers(task_id: str, content_type: str) -> dict[str, str]:
    extension = content_type.rpartition("/")[2].replace("jpeg", "jpg")
    return {"Content-Disposition": f'inline; filename="{task_id}.{extension}"', "Cache-Control": "private, max-age=3600"}


class TaskResultView(APIView):
    """GET: the result image with its content type; 404 unknown/expired, 409 not finished.
    DELETE: drop the stored result now (204); 404 when there is none (unknown task, expired,
    deleted), 409 while the task is still queued or running."""

    @extend_schema(summary="Download the result image",
                   parameters=[wait_parameter("then the image, 409 when it failed, or 202 with the status "
                                              "when the time ran out first.")],
                   responses={(200, "image/*"): OpenApiResponse(description="The encoded image."),
                              202: TaskStatusSerializer, **ERRORS})
    def get(self, request: Request, task_id: str) -> HttpResponse:
        state = load_status(task_id)
        found = storage.load_output(settings.get_redis(), task_id) if state["status"] == "finished" else None
        data, content_type = deliverable_result(task_id, state, found)
        response = HttpResponse(data, content_type=content_type)
        for name, value in result_headers(task_id, content_type).items():
            response[name] = value
        return response

    @extend_schema(summary="Delete the result image", operation_id="tasks_result_delete",
                   description="Frees the stored result at once instead of at the end of its retention "
                               "(PIXELFLEET_OUTPUT_TTL). The task's status stays readable.",
                   responses={204: OpenApiResponse(description="Deleted."), **ERRORS})
    def delete(self, request: Request, task_id: str) -> HttpResponse:
        check_task_id(task_id)
        if not storage.delete_output(settings.get_redis(), task_id):
            state = load_status(task_id)                     # 404 task_not_found when unknown
            if state["status"] in ("queued", "started"):
                raise Conflict(f"task {task_id} is {state['status']}: it has no result yet",
                               {"status": state["status"]}, code="not_finished")
            raise NotFound(f"task {task_id} has no stored result: already deleted, expired (results are kept "
                           f"{settings.OUTPUT_TTL} s), or it did not finish", code="result_not_found")
        log_event(log, "result_deleted", task=task_id)
        return HttpResponse(status=http.HTTP_204_NO_CONTENT)

    def perform_content_negotiation(self, request, force=False):
        # The body is an image whatever the Accept header says; errors still render as JSON.
        return super().perform_content_negotiation(request, force=True)


class LegacyTaskStatusView(TaskDetailView):
    """GET /api/task/<id>/status/ — the original system's path; same body as /api/tasks/<id>/."""

    http_method_names = ["get", "head", "options"]

    @extend_schema(summary="Task status (original path)", operation_id="task_status_original",
                   parameters=[wait_parameter("the status once it ended, or as it is after that many seconds.")],
                   responses={200: TaskStatusSerializer, **ERRORS})
    def get(self, request: Request, task_id: str) -> Response:
        return Response(load_status(task_id))


class DistributedBatchView(APIView):
    """POST /api/process-batch/distributed/ — the original body; 202 with the task id at once."""

    throttle_classes = [SubmitThrottle]

    @extend_schema(summary="Run a pipeline on the fleet (original path)",
                   description='Body as the original system: {"filters": [...], "filter_params": {...}}; the image '
                               "is optional (base64 in `image`, or `sample`; default the 4k sample).",
                   request=DistributedBatchSerializer, responses={202: TaskAcceptedSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        from filters.samples import DEFAULT_SAMPLE
        return submit(request, default_sample=DEFAULT_SAMPLE, source="api-distributed", strict=False)
