"""The task status and result, answered at the ASGI layer: what polling clients hit, kept cheap.

Why in front of Django: a status poll is the API's most frequent request (a client
without `?wait` asks every few ms), and through Django's ASGI handler each one paid
thread hops (the handler closes every response through sync_to_async, and runs each
request's sync work in a thread it creates) — milliseconds of CPU taken from the
workers on the same machine. Here a JSON status request costs one pipelined Redis read
(workers.status: HMGET of the job's fields and its latest result) and, for `?wait=S`,
a BLPOP in the event loop (api.views_wait.wait_for_task), with no thread at all.

A poller's last request, the plain GET of a result, is answered here too: the status
reads and (in Redis) the result's bytes in one round trip, or the file store's file read
in a thread; the same refusals as the Django view (views_tasks.deliverable_result). With
`?wait` the result goes to Django (api.views_wait).

Same answers as the Django views: the same body (workers.status builds it), the same
error shape and codes, the same access line and request counter, the same host check
and security headers (read from Django's settings). A browser asking for HTML, or any
other path or method, goes on to Django.
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from types import SimpleNamespace
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs

from django.conf import settings as django_settings
from django.http.request import split_domain_port, validate_host

from api.auth import ReadPermission
from api.exceptions import InvalidInput, error_body, to_response_parts
from api import request_counter
from api import fleet_cache
from api.views_wait import WAIT_PARAM, wait_for_task, wait_seconds
from api.views_tasks import check_task_id, deliverable_result, result_headers, task_not_found
from workers import settings, storage
from workers import status as task_state
from workers.logs import get_logger, log_event

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

STATUS_PATHS = (re.compile(r"^/api/tasks/(?P<task_id>[^/]+)/?$"),
                re.compile(r"^/api/task/(?P<task_id>[^/]+)/status/?$"))
RESULT_PATH = re.compile(r"^/api/tasks/(?P<task_id>[^/]+)/result/?$")
log = get_logger("webapp.access")


def _security_headers() -> list[tuple[bytes, bytes]]:
    """The headers Django's security and clickjacking middleware add, from the same settings."""
    headers = [(b"x-frame-options", getattr(django_settings, "X_FRAME_OPTIONS", "DENY").encode())]
    if getattr(django_settings, "SECURE_CONTENT_TYPE_NOSNIFF", True):
        headers.append((b"x-content-type-options", b"nosniff"))
    if policy := getattr(django_settings, "SECURE_REFERRER_POLICY", "same-origin"):
        headers.append((b"referrer-policy", (policy if isinstance(policy, str) else ",".join(policy)).encode()))
    if coop := getattr(django_settings, "SECURE_CROSS_ORIGIN_OPENER_POLICY", "same-origin"):
        headers.append((b"cross-origin-opener-policy", coop.encode()))
    return headers


async def _client_gone(receive: Receive) -> None:
    """Returns when the client disconnects (a GET's one body message is read and skipped)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class FastStatus:
    """ASGI middleware: GET /api/tasks/<id>/ and /api/task/<id>/status/ (JSON) served here."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app
        self.extra_headers = _security_headers()
        self.allowed_hosts = list(django_settings.ALLOWED_HOSTS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task_id = self._match(scope)
        if task_id is None:
            result_id = self._match_result(scope)
            if result_id is None:
                await self.app(scope, receive, send)
            else:
                await self._serve_result(result_id, scope, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        if WAIT_PARAM.encode() not in scope.get("query_string", b""):   # a plain poll: answered at once
            status, body, extra = await self._answer(task_id, scope, headers)
        else:
            answer = asyncio.ensure_future(self._answer(task_id, scope, headers))
            gone = asyncio.ensure_future(_client_gone(receive))
            await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not answer.done():   # the client left while waiting: stop waiting (frees the BLMOVE)
                answer.cancel()
                await asyncio.gather(answer, return_exceptions=True)
                log_event(log, "request", method="GET", path=scope["path"], status=499,
                          ms=round((time.perf_counter() - started) * 1000, 1),
                          client=(scope.get("client") or ("-",))[0], bytes=0, error="client_gone")
                return
            gone.cancel()
            status, body, extra = answer.result()
        await self._respond(scope, send, status, body, {"vary": "Accept", **extra}, started)

    async def _respond(self, scope: Scope, send: Send, status: int, body: Any, extra: dict[str, str],
                       started: float) -> None:
        """Send `body` (bytes with extra["content-type"], else JSON) with the security
        headers and `extra`, then count and log the request as Django's middleware would."""
        extra = dict(extra)
        if isinstance(body, bytes):
            payload, content_type = body, extra.pop("content-type")
        else:
            payload, content_type = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(), "application/json"
        response_headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(payload)).encode()),
                            *self.extra_headers, *((k.lower().encode(), str(v).encode()) for k, v in extra.items())]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": payload})
        self._account(scope, status, body, len(payload), started)

    @staticmethod
    def _match(scope: Scope) -> str | None:
        if scope["type"] != "http" or scope["method"] != "GET":
            return None
        for pattern in STATUS_PATHS:
            found = pattern.match(scope["path"])
            if found:
                accept = next((v for k, v in scope.get("headers") or [] if k.lower() == b"accept"), b"")
                return None if b"text/html" in accept else found["task_id"]
        return None

    @staticmethod
    def _match_result(scope: Scope) -> str | None:
        """A plain GET of a result (a poller's last request); `?wait` goes to Django (api.views_wait)."""
        if scope["type"] != "http" or scope["method"] != "GET" or WAIT_PARAM.encode() in scope.get("query_string", b""):
            return None
        found = RESULT_PATH.match(scope["path"])
        return found["task_id"] if found else None

    async def _serve_result(self, task_id: str, scope: Scope, send: Send) -> None:
        """GET /api/tasks/<id>/result/: the image, or the same refusals as the Django view
        (views_tasks.deliverable_result). A result in Redis comes in the status reads' round
        trip; a file store's is read in a thread (a large PNG must not stall the loop)."""
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        try:
            self._check_request(task_id, headers)
            in_redis = storage.current_store().in_redis
            aconn = settings.get_async_redis()
            async with aconn.pipeline(transaction=False) as pipe:
                task_state.queue_status_reads(pipe, task_id)
                if in_redis:
                    storage.queue_output_read(pipe, task_id)
                replies = await pipe.execute()
            info = await self._status_from(task_id, replies[0], replies[1])
            if in_redis:
                found = storage.output_from_read(replies[2])
            elif info["status"] == "finished":
                found = await asyncio.to_thread(storage.load_output, settings.get_redis(), task_id)
            else:
                found = None
            data, content_type = deliverable_result(task_id, info, found)
            status, body, extra = 200, data, {"content-type": content_type, **result_headers(task_id, content_type)}
        except Exception as exc:  # noqa: BLE001 - ours → 4xx/503; anything else is a bug, logged
            status, body, extra = self._refusal(exc)
        await self._respond(scope, send, status, body, extra, started)

    def _check_request(self, task_id: str, headers: dict[str, str]) -> None:
        """The host, the task id and the read permission, as Django and DRF check them."""
        self._check_host(headers)
        self._check_task(task_id, headers)

    def _check_host(self, headers: dict[str, str]) -> None:
        host = headers.get("host", "")
        domain, _port = split_domain_port(host)
        if not domain or not validate_host(domain, self.allowed_hosts):
            raise InvalidInput(f"Invalid HTTP_HOST header: {host!r:.80}", code="bad_request")

    @staticmethod
    def _check_task(task_id: str, headers: dict[str, str]) -> None:
        check_task_id(task_id)
        ReadPermission().has_permission(SimpleNamespace(method="GET", META={
            "HTTP_AUTHORIZATION": headers.get("authorization", "")}), None)

    @staticmethod
    async def _status_from(task_id: str, fields: list[Any], results: list[Any]) -> dict[str, Any]:
        """The status from queue_status_reads' answers; NotFound for an unknown task."""
        fleet = await fleet_cache.afleet() if fields and fields[0] == b"queued" else ([], frozenset())
        info = task_state.status_from_reads(task_id, fields, results, lambda: fleet)
        if info is None:
            raise task_not_found(task_id)
        return info

    @staticmethod
    def _refusal(exc: Exception) -> tuple[int, Any, dict[str, str]]:
        parts = to_response_parts(exc)
        if parts is not None:
            return parts
        log_event(log, "unhandled_error", logging.ERROR, exc_info=exc, view="FastStatus")
        return 500, error_body("internal_error", "The server failed to handle this request; "
                               "it has been logged."), {}

    async def _answer(self, task_id: str, scope: Scope, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        try:
            self._check_host(headers)
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            seconds = wait_seconds(query.get(WAIT_PARAM, [None])[-1])
            self._check_task(task_id, headers)
            if seconds is not None:
                await wait_for_task(task_id, seconds)
            aconn = settings.get_async_redis()
            async with aconn.pipeline(transaction=False) as pipe:
                task_state.queue_status_reads(pipe, task_id)
                fields, results = await pipe.execute()
            return 200, await self._status_from(task_id, fields, results), {}
        except Exception as exc:  # noqa: BLE001 - ours → 4xx/503; anything else is a bug, logged
            return self._refusal(exc)

    @staticmethod
    def _account(scope: Scope, status: int, body: Any, length: int, started: float) -> None:
        """The same request count and access line as api.middleware.RequestLogMiddleware."""
        request_counter.count()
        fields = {"method": "GET", "path": scope["path"], "status": status,
                  "ms": round((time.perf_counter() - started) * 1000, 1),
                  "client": (scope.get("client") or ("-",))[0], "bytes": length}
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            fields["error"] = body["error"].get("code")
        log_event(log, "request", logging.ERROR if status >= 500 else logging.INFO, **fields)
