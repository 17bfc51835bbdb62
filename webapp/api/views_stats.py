"""GET /api/stats/: uptime, requests served (fleet-wide) and task counters.

`uptime_s` is the API server's: since its master process started (gunicorn's arbiter,
which every worker process shares), not the answering worker process's own — with two
processes the figure used to alternate between two values. `process` says which process
answered and since when, explicitly.
"""
from __future__ import annotations

import os
import time
from functools import lru_cache

import psutil

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.request_counter import REQUESTS_KEY
from api.serializers import StatsSerializer
from workers import settings, stats
from workers.logs import utc_timestamp

STARTED_AT = time.time()      # when this API process imported its views
SERVER_NAMES = ("gunicorn", "uvicorn", "hypercorn", "daphne")


@lru_cache(maxsize=1)
def server_started_at() -> float:
    """When the API server started: its master's start when our parent is one, else ours."""
    try:
        parent = psutil.Process(os.getppid())
        command = " ".join(parent.cmdline()).lower()
        if any(name in command for name in SERVER_NAMES) or parent.name().startswith("pixelfleet-api"):
            return min(parent.create_time(), STARTED_AT)
    except psutil.Error:
        pass
    return STARTED_AT


class StatsView(APIView):
    @extend_schema(summary="Uptime, requests served, task counters", responses={200: StatsSerializer})
    def get(self, request: Request) -> Response:
        conn = settings.get_redis()
        counters = stats.counters(conn)
        served = int(conn.get(REQUESTS_KEY) or 0)
        started = server_started_at()
        now = time.time()
        return Response({
            "uptime_s": round(now - started, 3),
            "started_at": utc_timestamp(started),
            "process": {"pid": os.getpid(), "started_at": utc_timestamp(STARTED_AT),
                        "uptime_s": round(now - STARTED_AT, 3)},
            "requests_served": served,
            "tasks_submitted": counters.get("submitted", 0),
            "tasks_completed": counters.get("completed", 0),
            "tasks_failed": counters.get("failed", 0),
            "tasks": counters,
        })
