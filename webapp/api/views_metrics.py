"""GET /api/metrics/ (JSON with scaling advice) and GET /metrics (Prometheus text).

Both read the fleet once through `collect_fleet_data` and hand the reading to the pure
functions in api.metrics / api.prometheus, so the two endpoints never disagree.
"""
from __future__ import annotations

import threading
import time

import psutil
import redis
from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.auth import check_token, reads_require_token
from api.exceptions import ApiError, ServiceUnavailable, json_error, to_response_parts
from api.serializers import ErrorSerializer
from api.metrics import LATENCY_WINDOW_S, THROUGHPUT_WINDOWS, FleetData, build_metrics
from api.prometheus import CONTENT_TYPE, render
from workers.routing import all_queue_names
from workers.settings import COMPLETIONS_KEY, COMPLETIONS_WINDOW, env_int, get_redis

DEFAULT_MAX_SAMPLES = 10_000

CPU_SAMPLE_MIN_S = 1.0            # readings closer than this share one figure
CPU_FIRST_SAMPLE_S = 0.2          # the first reading of a process measures this long
_cpu_state: dict = {"times": None, "at": 0.0, "percent": None}
_cpu_lock = threading.Lock()


def _busy_and_total(times) -> tuple[float, float]:
    """(busy, total) CPU seconds of the host from psutil.cpu_times() (idle and iowait are not busy)."""
    total = sum(times)
    return total - times.idle - getattr(times, "iowait", 0.0), total


def host_cpu_percent() -> float:
    """Host CPU % since the previous reading of this process (at least CPU_SAMPLE_MIN_S ago).

    Computed from our own cpu_times() samples, not psutil.cpu_percent(None): psutil keeps
    that one's previous sample per *thread*, so under gunicorn's threads the first reading
    in each thread said 0.0 (the monitor showed "CPU 0.0%" on a busy host). Requests
    closer than CPU_SAMPLE_MIN_S share a reading: a figure over a few ms swings 0-100.
    """
    with _cpu_lock:
        now = time.monotonic()
        if _cpu_state["times"] is None:      # the first reading of this process: measure briefly
            _cpu_state["times"] = psutil.cpu_times()
            time.sleep(CPU_FIRST_SAMPLE_S)
            _cpu_state["at"] = 0.0
        if _cpu_state["percent"] is None or now - _cpu_state["at"] >= CPU_SAMPLE_MIN_S:
            current = psutil.cpu_times()
            busy0, total0 = _busy_and_total(_cpu_state["times"])
            busy1, total1 = _busy_and_total(current)
            if total1 > total0:
                _cpu_state["percent"] = round(min(100.0, max(0.0, (busy1 - busy0) / (total1 - total0) * 100)), 1)
            elif _cpu_state["percent"] is None:
                _cpu_state["percent"] = 0.0
            _cpu_state.update(times=current, at=time.monotonic())
        return _cpu_state["percent"]


def host_usage() -> dict:
    """CPU and memory of the machine serving the API (the original system's fields)."""
    memory = psutil.virtual_memory()
    return {"cpu_usage": host_cpu_percent(), "memory_usage": memory.percent,
            "memory_available_gb": round(memory.available / 1024 ** 3, 2)}


def queue_depths(conn: redis.Redis) -> dict[str, int]:
    """Jobs waiting in every queue the fleet can have (one pipelined round trip)."""
    from workers.jobs import queue

    names = all_queue_names()
    with conn.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.llen(queue(conn, name).key)
        return dict(zip(names, (int(n) for n in pipe.execute())))


def max_samples() -> int:
    """PIXELFLEET_METRICS_MAX_SAMPLES: completion records decoded per metrics request."""
    return max(100, env_int("PIXELFLEET_METRICS_MAX_SAMPLES", DEFAULT_MAX_SAMPLES))


def read_completions(conn: redis.Redis, window_s: float, limit: int,
                     now: float) -> tuple[list[dict], dict[int, int] | None]:
    """Completion records of the window, and exact per-window counts when capped.

    Normally workers.stats.recent_completions (the one reader). A fleet ending ~350
    tasks/s leaves 100k records in 5 minutes, which took ~1 s to read and decode per
    request; so when ZCOUNT (cheap) says the window holds more than `limit`, only the
    most recent `limit` records are read and the exact counts go along for throughput.
    """
    from workers.stats import parse_completions, recent_completions

    spans = sorted({*THROUGHPUT_WINDOWS.values(), int(window_s)})
    with conn.pipeline(transaction=False) as pipe:
        for span in spans:
            pipe.zcount(COMPLETIONS_KEY, now - min(span, COMPLETIONS_WINDOW), "+inf")
        counts = dict(zip(spans, (int(n) for n in pipe.execute())))
    if counts[int(window_s)] <= limit:
        return recent_completions(conn, window_s), None
    since = now - min(window_s, COMPLETIONS_WINDOW)
    raw = conn.zrevrangebyscore(COMPLETIONS_KEY, "+inf", since, start=0, num=limit)
    return parse_completions(reversed(raw)), counts


def collect_fleet_data(conn: redis.Redis, window_s: int = LATENCY_WINDOW_S) -> FleetData:
    """One reading of everything the metrics need; Redis errors propagate to the caller."""
    from workers.registry import read_workers
    from workers.stats import counters, read_histograms
    from workers.storage_budget import measure

    now = time.time()
    completions, window_counts = read_completions(conn, window_s, max_samples(), now)
    return FleetData(now=now, workers=read_workers(conn), queue_depths=queue_depths(conn),
                     counters=counters(conn), completions=completions, host=host_usage(),
                     window_counts=window_counts, histograms=read_histograms(conn),
                     storage=measure(conn).as_dict())


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


def prometheus_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format 0.0.4; with Redis down, pixelfleet_redis_up 0 and host gauges.

    A plain Django view, not DRF: a scraper's Accept header (openmetrics first) must not
    go through DRF's content negotiation, and a scrape should never be throttled.
    """
    if request.method not in ("GET", "HEAD"):
        response = json_error(405, "method_not_allowed", f'Method "{request.method}" not allowed.')
        response["Allow"] = "GET, HEAD"
        return response
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
