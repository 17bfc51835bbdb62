"""GET /api/health/ and GET /api/workers/status/: is the fleet able to work, and who is in it.

Health answers 503 only when the API cannot do its job (Redis unreachable). Otherwise
200 with a status from workers.readiness: "ok" when a worker takes tasks, "warming"
while the live workers are all still compiling kernels, "degraded" with the reason when
no worker lives or queued tasks have no live worker able to run them (tasks are
accepted and wait). `?require_workers=1` turns anything but "ok" into a 503 — a load
balancer wants the first, an operator's check (or a script waiting for `make run`) the
second.
"""
from __future__ import annotations

import time
from collections import Counter
from typing import Any

import redis
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.serializers import HealthSerializer, WorkersSerializer
from api.views_metrics import queue_depths
from workers import settings
from workers.logs import utc_timestamp
from workers.readiness import assess
from workers.registry import read_workers


def version() -> str:
    """The project version (settings.PIXELFLEET_VERSION, read from pyproject.toml)."""
    from django.conf import settings as django_settings
    return django_settings.PIXELFLEET_VERSION


def iso_now() -> str:
    return utc_timestamp(time.time())


def summarize_workers(workers: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of live workers per capability class and per state."""
    by_capability = {cap: 0 for cap in settings.CAPABILITIES}
    for record in workers:
        for cap in record.get("capabilities") or ():
            by_capability[cap] = by_capability.get(cap, 0) + 1
    by_state = Counter(str(record.get("state", "unknown")) for record in workers)
    return {"live": len(workers), "by_capability": by_capability, "by_state": dict(by_state)}


def gpu_status() -> tuple[bool, str | None]:
    """(cuda_available, device name) from filters.dispatch, which caches its one probe."""
    from filters import dispatch
    available = bool(dispatch.gpu_available())
    return available, (dispatch.gpu_device_name() if available else None)


class HealthView(APIView):
    @extend_schema(summary="Fleet health",
                   parameters=[OpenApiParameter("require_workers", bool, required=False,
                                                description="503 (not 200) unless the status is 'ok': no worker "
                                                            "alive, all warming, or queued work nobody can take")],
                   responses={200: HealthSerializer, 503: HealthSerializer})
    def get(self, request: Request) -> Response:
        reasons: list[str] = []
        redis_info: dict[str, Any] = {"reachable": False}
        workers_info: dict[str, Any] = {"live": 0, "by_capability": {}, "by_state": {}}
        readiness = None
        try:
            conn = settings.get_redis()
            started = time.perf_counter()
            conn.ping()
            redis_info = {"reachable": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
            workers = read_workers(conn)
            workers_info = summarize_workers(workers)
            readiness = assess(workers, queue_depths(conn))
        except redis.RedisError as exc:
            redis_info["reachable"] = False
            reasons.append(f"Redis is unreachable: {type(exc).__name__}: {exc}")
        cuda_available, gpu_device = gpu_status()
        if readiness is None:
            state = "unhealthy"
        else:
            state, reasons = readiness.status, readiness.reasons
        require_workers = request.query_params.get("require_workers", "").lower() in {"1", "true", "yes"}
        failing = state == "unhealthy" or (state != "ok" and require_workers)
        body = {"status": state, "reasons": reasons, "redis": redis_info, "workers": workers_info,
                "cuda_available": cuda_available, "gpu_device": gpu_device, "version": version(),
                "time": iso_now()}
        return Response(body, status=503 if failing else 200)


class WorkersStatusView(APIView):
    @extend_schema(summary="Live workers (heartbeat registry)", responses={200: WorkersSerializer})
    def get(self, request: Request) -> Response:
        workers = read_workers(settings.get_redis())
        summary = summarize_workers(workers)
        return Response({"workers": workers, "count": len(workers),
                         "by_capability": summary["by_capability"], "by_state": summary["by_state"]})
