"""Queue control and fleet history: what the web dashboard acts through, open to scripts too.

GET /api/queues/ (depth, age of the oldest task, paused), POST /api/queues/<name>/pause/,
/resume/ and /empty/ (the last needs {"confirm": "<queue name>"}), POST
/api/tasks/retry-failed/ (bulk retry) and GET /api/metrics/history/ (the charts). Each is
a thin view over workers.queues, workers.status and api.metrics: no figure is computed here.
"""
from __future__ import annotations

import time
from typing import Any

import redis
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api import inputs
from api.exceptions import InvalidInput, ServiceUnavailable
from api.metrics import HISTORY_BUCKET_S, HISTORY_WINDOW_S, history
from api.serializers import ErrorSerializer
from api.throttling import SubmitThrottle
from api.views_metrics import max_samples, queue_depths, read_completions
from workers import queues, settings, storage_budget
from workers import status as task_state
from workers.logs import get_logger, log_event

log = get_logger("webapp.queues")
ERRORS = {code: OpenApiResponse(ErrorSerializer) for code in (400, 401, 403, 404, 409, 503)}
OBJECT = OpenApiResponse(OpenApiTypes.OBJECT)
MAX_BULK_RETRY = 1000


def queue_entry(conn: redis.Redis, name: str) -> dict[str, Any]:
    """One queue's overview entry (the same reading as GET /api/queues/)."""
    depths = queue_depths(conn)
    return next(q for q in queues.queue_overview(conn, {name: depths.get(name, 0)}))


def _int_param(raw: Any, name: str, low: int, high: int, default: int) -> int:
    if raw is None or raw == "":
        return default
    text = str(raw).strip()
    if isinstance(raw, bool) or not text.isdigit() or not low <= int(text) <= high:
        raise InvalidInput(f"{name} must be an integer from {low} to {high}, got {str(raw)[:40]!r}", {"field": name})
    return int(text)


class QueueListView(APIView):
    """GET: every queue the fleet can have, with depth, oldest task and pause state."""

    @extend_schema(summary="Queues: depth, oldest task, paused", responses={200: OBJECT, **ERRORS})
    def get(self, request: Request) -> Response:
        conn = settings.get_redis()
        entries = queues.queue_overview(conn, queue_depths(conn))
        return Response({"queues": entries, "paused": [q["name"] for q in entries if q["paused"]],
                         "pause_check_s": settings.PAUSE_CHECK_S})


class QueueActionView(APIView):
    """POST pause | resume: workers stop (or go back to) taking tasks from the queue."""

    action = "pause"

    @extend_schema(summary="Pause or resume a queue", request=None, responses={200: OBJECT, **ERRORS})
    def post(self, request: Request, name: str) -> Response:
        conn = settings.get_redis()
        name = queues.check_queue(name)
        changed = (queues.pause_queue if self.action == "pause" else queues.resume_queue)(conn, name)
        return Response({"queue": queue_entry(conn, name), "changed": changed})


class QueueEmptyView(APIView):
    """POST {"confirm": "<queue name>"}: cancel every task queued there (each stays retryable)."""

    @extend_schema(summary="Empty a queue (cancels its queued tasks)",
                   request={"application/json": OpenApiTypes.OBJECT}, responses={200: OBJECT, **ERRORS})
    def post(self, request: Request, name: str) -> Response:
        conn = settings.get_redis()
        name = queues.check_queue(name)
        confirm = inputs.body_dict(request).get("confirm")
        if confirm not in (name, name[len(settings.QUEUE_PREFIX):]):
            raise InvalidInput(f"emptying cancels every task queued on {name}; send "
                               f'{{"confirm": "{name}"}} to confirm', {"field": "confirm", "queue": name},
                               code="confirmation_required")
        canceled = queues.empty_queue(conn, name)
        return Response({"queue": queue_entry(conn, name), "canceled": len(canceled), "task_ids": canceled[:100]})


class BulkRetryView(APIView):
    """POST: retry the most recent failed tasks (optionally of one queue), up to `limit`."""

    throttle_classes = [SubmitThrottle]

    @extend_schema(summary="Retry failed tasks in bulk", request={"application/json": OpenApiTypes.OBJECT},
                   responses={202: OBJECT, **ERRORS})
    def post(self, request: Request) -> Response:
        body = inputs.body_dict(request)
        limit = _int_param(body.get("limit"), "limit", 1, MAX_BULK_RETRY, MAX_BULK_RETRY)
        queue = queues.check_queue(body["queue"]) if body.get("queue") else None
        conn = settings.get_redis()
        storage_budget.check_capacity(conn)    # retries are new work: 503 above the storage mark
        failed = [t for t in task_state.list_tasks(conn, status="failed", limit=MAX_BULK_RETRY)
                  if queue is None or t["queue"] == queue][:limit]
        retried, errors = [], []
        for task in failed:
            try:
                retried.append(task_state.retry_task(conn, task["task_id"])["task_id"])
            except task_state.TaskError as exc:     # retried by someone else meanwhile
                errors.append({"task_id": task["task_id"], "message": exc.message})
        log_event(log, "bulk_retried", retried=len(retried), errors=len(errors), queue=queue)
        return Response({"retried": len(retried), "task_ids": retried, "errors": errors},
                        status=http.HTTP_202_ACCEPTED)


class MetricsHistoryView(APIView):
    """GET: throughput and latency per bucket over the last minutes (api.metrics.history)."""

    @extend_schema(summary="Throughput and latency history", responses={200: OBJECT, **ERRORS},
                   parameters=[OpenApiParameter("window", int, required=False,
                                                description=f"seconds, 60..{settings.COMPLETIONS_WINDOW}"),
                               OpenApiParameter("bucket", int, required=False, description="seconds, 5..300")])
    def get(self, request: Request) -> Response:
        window = _int_param(request.query_params.get("window"), "window", 60, settings.COMPLETIONS_WINDOW,
                            HISTORY_WINDOW_S)
        bucket = _int_param(request.query_params.get("bucket"), "bucket", 5, 300, HISTORY_BUCKET_S)
        now = time.time()
        try:
            records, counts = read_completions(settings.get_redis(), window, max_samples(), now)
        except redis.RedisError as exc:
            raise ServiceUnavailable(f"Redis is unreachable, history cannot be read: {exc}") from exc
        body = history(records, now, window, bucket)
        if counts is not None:
            body["sampled"] = True      # only the most recent max_samples() records were read
        return Response(body)
