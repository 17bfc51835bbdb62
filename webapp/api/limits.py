"""A bound on requests that hold a thread for seconds, so they cannot starve the API.

Why: under gunicorn's threads, twelve anonymous `GET /api/image/slow/?delay=10` once
held every thread and /api/health/ waited 8.6 s. Under ASGI (uvicorn) Django runs each
sync view in a thread of its own, so nothing caps them at all: fifty such requests are
fifty threads and fifty 4k images in memory. Each long endpoint (the slow sample,
/api/process waiting for its task, the in-process batch runs) therefore takes a slot
here first; beyond PIXELFLEET_API_LONG_REQUESTS slots per API process it is answered at
once with 429 and a Retry-After that says when the soonest slot frees, and health
checks, submits and status reads keep the process to themselves.

Per process, not per fleet: threads and memory are a process's. Non-blocking (acquire
or refuse, never wait), so it behaves the same in a worker thread and in an event loop.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rest_framework import status

from api.exceptions import ApiError
from workers.settings import env_int


DEFAULT_LONG_REQUESTS = 4


def long_request_limit() -> int:
    """PIXELFLEET_API_LONG_REQUESTS (default 4, at least 1), read per request."""
    return max(1, env_int("PIXELFLEET_API_LONG_REQUESTS", DEFAULT_LONG_REQUESTS))


class TooBusy(ApiError):
    """429: this API process already runs its share of long requests."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "too_busy"

    def __init__(self, message: str, details: dict, retry_after_s: int) -> None:
        super().__init__(message, details)
        self.retry_after_s = retry_after_s


class LongRequests:
    """Slots for long requests in this process; each records when it expects to end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ends: dict[int, float] = {}
        self._issued = 0

    def in_flight(self) -> int:
        with self._lock:
            return len(self._ends)

    @contextmanager
    def slot(self, what: str, expected_s: float) -> Iterator[None]:
        """Hold a slot for the block, or raise TooBusy (429) at once when none is free."""
        limit = long_request_limit()
        now = time.monotonic()
        with self._lock:
            if len(self._ends) >= limit:
                soonest = min(self._ends.values())
                retry = max(1, math.ceil(soonest - now))
                raise TooBusy(f"{what}: this API process already serves {limit} long request(s) "
                              f"(PIXELFLEET_API_LONG_REQUESTS); retry in {retry} s",
                              {"limit": limit, "retry_after_s": retry}, retry)
            self._issued += 1
            token = self._issued
            self._ends[token] = now + max(0.0, expected_s)
        try:
            yield
        finally:
            with self._lock:
                self._ends.pop(token, None)


long_requests = LongRequests()
