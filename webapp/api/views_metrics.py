"""GET /api/metrics/ (JSON with scaling advice) and GET /metrics (Prometheus text).

Both read the fleet once through `collect_fleet_data` and hand the reading to the pure
functions in api.metrics / api.prometheus, so the two endpoints never disagree.
"""
from __future__ import annotations

import time

import psutil
import redis
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.auth import check_token, reads_require_token
from api.exceptions import ApiError, ServiceUnavailable, to_response_parts
from api.serializers import ErrorSerializer
from api.metrics import LATENCY_WINDOW_S, FleetData, build_metrics
from api.prometheus import CONTENT_TYPE, render
from workers.routing import all_queue_names
from workers.settings import COMPLETIONS_WINDOW, get_redis

psutil.cpu_percent(interval=None)   # primes the counter: the next call measures since now


def host_usage() -> dict:
    """CPU and memory of the machine serving the API (the original system's fields)."""
    memory = psutil.virtual_memory()
    return {"cpu_usage": psutil.cpu_percent(interval=None), "memory_usage": memory.percent,
            "memory_available_gb": round(memory.available / 1024 ** 3, 2)}


def queue_depths(conn: redis.Redis) -> dict[str, int]:
    """Jobs waiting in every queue the fleet can have (one pipelined round trip)."""
    from rq import Queue

    names = all_queue_names()
    with conn.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.llen(Queue(name, connection=conn).key)
        return dict(zip(names, (int(n) for n in pipe.execute())))


def collect_fleet_data(conn: redis.Redis, window_s: int = LATENCY_WINDOW_S) -> FleetData:
    """One reading of everything the metrics need; Redis errors propagate to the caller."""
    from workers.registry import read_workers
    from workers.stats import counters, recent_completions

    return FleetData(now=time.time(), workers=read_workers(conn), queue_depths=queue_depths(conn),
                     counters=counters(conn), completions=recent_completions(conn, window_s),
                     host=host_usage())


class MetricsView(APIView):
    """Fleet metrics: the original fields, per-queue and per-capability detail, advice."""

    @extend_schema(summary="Fleet metrics and scaling advice",
                   description="Host and fleet metrics, per-queue depth, throughput, latency "
                               "percentiles and advice per capability class (docs/api_ops.md).",
                   responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="metrics"),
                              503: OpenApiResponse(ErrorSerializer)})
    def get(self, request: Request) -> Response:
        try:
            data = collect_fleet_data(get_redis())
        except redis.RedisError as exc:
            raise ServiceUnavailable(f"Redis is unreachable, metrics cannot be read: {exc}") from exc
        return Response(build_metrics(data))


@require_GET
def prometheus_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format 0.0.4; with Redis down, pixelfleet_redis_up 0 and host gauges.

    A plain Django view, not DRF: a scraper's Accept header (openmetrics first) must not
    go through DRF's content negotiation, and a scrape should never be throttled.
    """
    if reads_require_token():
        try:
            check_token(request)
        except ApiError as exc:
            _, body, headers = to_response_parts(exc)
            return JsonResponse(body, status=exc.status_code, headers=headers)
    try:
        data, up = collect_fleet_data(get_redis(), COMPLETIONS_WINDOW), True
    except redis.RedisError:
        data, up = FleetData(now=time.time(), workers=[], queue_depths={}, host=host_usage()), False
    return HttpResponse(render(data, redis_up=up), content_type=CONTENT_TYPE)
