"""GET /api/stats/: uptime, requests served (fleet-wide) and task counters."""
from __future__ import annotations

import time

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.middleware import REQUESTS_KEY
from api.serializers import StatsSerializer
from workers import settings, stats
from workers.logs import utc_timestamp

STARTED_AT = time.time()      # when this API process imported its views


class StatsView(APIView):
    @extend_schema(summary="Uptime, requests served, task counters", responses={200: StatsSerializer})
    def get(self, request: Request) -> Response:
        conn = settings.get_redis()
        counters = stats.counters(conn)
        served = int(conn.get(REQUESTS_KEY) or 0)
        return Response({
            "uptime_s": round(time.time() - STARTED_AT, 3),
            "started_at": utc_timestamp(STARTED_AT),
            "requests_served": served,
            "tasks_submitted": counters.get("submitted", 0),
            "tasks_completed": counters.get("completed", 0),
            "tasks_failed": counters.get("failed", 0),
            "tasks": counters,
        })
