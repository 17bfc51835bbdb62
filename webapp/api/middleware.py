"""Request counting, one access-log line per request, and the request-size guard.

The count lives in Redis (api/request_counter.py: batched from the event loop), so
/api/stats/ reports requests served by the whole API fleet, not by one gunicorn worker.
Counting or logging must never fail a request: a Redis error there is swallowed (the
view itself reports Redis trouble properly).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings as django_settings
from django.http import HttpRequest, HttpResponse
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.middleware.clickjacking import XFrameOptionsMiddleware as DjangoXFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware as DjangoCommonMiddleware
from django.middleware.security import SecurityMiddleware as DjangoSecurityMiddleware

from api import request_counter
from api.exceptions import json_error
from workers.logs import get_logger, log_event

log = get_logger("webapp.access")


class RequestLogMiddleware:
    """Counts every request in Redis and logs `method path status ms` as one line.

    Sync and async capable: under ASGI (the API's server model, docs/api.md) the chain
    stays async, so a view waiting on Redis (`?wait=`) holds no thread on its way out.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        response = self.get_response(request)
        request_counter.count_sync()
        self._log(request, response, started)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = await self.get_response(request)
        request_counter.count()
        self._log(request, response, started)
        return response

    @staticmethod
    def _log(request: HttpRequest, response: HttpResponse, started: float) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        level = logging.ERROR if response.status_code >= 500 else logging.INFO
        fields = {"method": request.method, "path": request.path, "status": response.status_code,
                  "ms": round(elapsed_ms, 1), "client": request.META.get("REMOTE_ADDR"), "bytes": _length(response)}
        code = _error_code(response)
        if code:
            fields["error"] = code
        log_event(log, "request", level, **fields)


def _error_code(response: HttpResponse) -> str | None:
    """The `error.code` of a DRF error response, so a 4xx line says which refusal it was."""
    data = getattr(response, "data", None)
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return data["error"].get("code")
    return None


def _length(response: HttpResponse) -> int | None:
    if response.streaming:
        return None
    return len(response.content)


class BodySizeLimitMiddleware:
    """413 JSON from Content-Length before the body is read (MAX_REQUEST_BYTES).

    DRF's JSON parser reads the stream directly, bypassing Django's
    DATA_UPLOAD_MAX_MEMORY_SIZE check, so the limit is enforced here for every parser.
    Sync and async capable, like RequestLogMiddleware.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        refusal = self._refusal(request)
        if self.is_async:
            return self._arespond(request, refusal)
        return refusal or self.get_response(request)

    async def _arespond(self, request: HttpRequest, refusal: HttpResponse | None) -> HttpResponse:
        return refusal or await self.get_response(request)

    @staticmethod
    def _refusal(request: HttpRequest) -> HttpResponse | None:
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return json_error(400, "bad_request", f"Content-Length is not a number: {raw!r:.40}")
        limit = django_settings.MAX_REQUEST_BYTES
        if length > limit:
            return json_error(413, "request_too_large",
                              f"The request body has {length} bytes; the limit is {limit} bytes "
                              "(PIXELFLEET_MAX_REQUEST_BYTES; images are limited to PIXELFLEET_MAX_BYTES each).",
                              {"bytes": length, "limit": limit})
        return None


class InlineHooks:
    """Runs a Django MiddlewareMixin's process_request/process_response in the event loop.

    Why: under ASGI, Django calls a MiddlewareMixin's hooks through sync_to_async — a
    thread hop per hook, five per request for the three below, which made a status poll
    cost milliseconds of CPU. Their hooks only read and set headers (no I/O), so calling
    them inline is safe. `middleware_class` names the Django class; sync mode is unchanged.
    """

    sync_capable = True
    async_capable = True
    middleware_class: type = type(None)

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.inner = self.middleware_class(get_response)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self.__acall__(request)
        return self.inner(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        response = None
        if hasattr(self.inner, "process_request"):
            response = self.inner.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self.inner, "process_response"):
            if self.response_does_io(request):
                response = await sync_to_async(self.inner.process_response)(request, response)
            else:
                response = self.inner.process_response(request, response)
        return response

    def response_does_io(self, request: HttpRequest) -> bool:
        """True when process_response may do blocking I/O for this request (then a thread)."""
        return False


class SecurityMiddleware(InlineHooks):
    """django.middleware.security.SecurityMiddleware, hooks inline under ASGI."""

    middleware_class = DjangoSecurityMiddleware


class SessionMiddleware(InlineHooks):
    """django.contrib.sessions' SessionMiddleware: process_request only makes a lazy
    session object, inline; process_response saves to Redis (dashboard.sessions) only when
    a view touched the session (the dashboard's), and then it runs in a thread."""

    middleware_class = DjangoSessionMiddleware

    def response_does_io(self, request: HttpRequest) -> bool:
        session = getattr(request, "session", None)
        return bool(session is not None and session.accessed)


class CommonMiddleware(InlineHooks):
    """django.middleware.common.CommonMiddleware, hooks inline under ASGI."""

    middleware_class = DjangoCommonMiddleware


class XFrameOptionsMiddleware(InlineHooks):
    """django.middleware.clickjacking.XFrameOptionsMiddleware, hooks inline under ASGI."""

    middleware_class = DjangoXFrameOptionsMiddleware
