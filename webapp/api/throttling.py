"""Submit throttling shared by every gunicorn worker: a fixed-window counter in Redis.

DRF's built-in throttles keep their history in Django's cache, which is per process
here (no shared cache is configured), so N gunicorn workers would allow N times the
rate. PIXELFLEET_THROTTLE_SUBMIT ("100/min", "5/s", "1000/hour"; unset = off) is read
per request. When Redis is unreachable the request is allowed: the submit itself will
then fail with 503, which says more than a 429.
"""
from __future__ import annotations

import os
import time

import redis
from rest_framework.throttling import BaseThrottle

from api.auth import bearer_token, token_id
from api.exceptions import ImproperRate
from workers import settings

THROTTLE_KEY = settings.THROTTLE_KEY
_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60,
            "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


def parse_rate(raw: str) -> tuple[int, int] | None:
    """'100/min' -> (100, 60); '' -> None (off). A malformed value is a configuration error."""
    raw = raw.strip()
    if not raw or raw.lower() in {"0", "off", "none"}:
        return None
    count, _, period = raw.partition("/")
    try:
        number = int(count)
        seconds = _PERIODS[period.strip().lower()]
    except (ValueError, KeyError):
        raise ImproperRate(f"PIXELFLEET_THROTTLE_SUBMIT must look like '100/min' (s|min|hour|day), got {raw!r}") from None
    if number <= 0:
        return None
    return number, seconds


class SubmitThrottle(BaseThrottle):
    """Limits submissions per client (bearer token, else remote address)."""

    scope = "submit"

    def __init__(self) -> None:
        self.wait_s: float | None = None

    def allow_request(self, request, view) -> bool:
        rate = parse_rate(os.environ.get("PIXELFLEET_THROTTLE_SUBMIT", ""))
        if rate is None or request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        limit, period = rate
        now = time.time()
        window = int(now // period)
        token = bearer_token(request)
        ident = token_id(token) if token else self.get_ident(request)
        key = THROTTLE_KEY.format(scope=self.scope, ident=ident, window=window)
        try:
            conn = settings.get_redis()
            with conn.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, period + 1)
                count, _ = pipe.execute()
        except redis.RedisError:
            return True
        if count <= limit:
            return True
        self.wait_s = (window + 1) * period - now
        return False

    def wait(self) -> float | None:
        return self.wait_s
