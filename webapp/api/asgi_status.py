"""The task status and result, answered at the ASGI layer: what polling clients hit, kept cheap.

Why in front of Django: a status poll is the API's most frequent request (a client
without `?wait` asks every few ms), and through Django's ASGI handler each one paid
thread hops (the handler closes every response through sync_to_async, and runs each
request's sync work in a thread it creates) — milliseconds of CPU taken from the
workers on the same machine. Here a JSON status request costs one Redis read
(workers.status.aread_status: HMGET of the job's fields, and its latest result only once
it ended) and, for `?wait=S`, a BLMOVE in the event loop (api.views_wait.wait_for_task),
with no thread at all.

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
import re
import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

from api.asgi_front import Answer, AsgiFront, Receive, Scope, Send, client_gone, request_headers
from api.auth import ReadPermission
from api import fleet_cache
from api.views_wait import WAIT_PARAM, wait_for_task, wait_seconds
from api.views_tasks import check_task_id, deliverable_result, result_headers, task_not_found
from workers import settings, storage
from workers import status as task_state

STATUS_PATHS = (re.compile(r"^/api/tasks/(?P<task_id>[^/]+)/?$"),
                re.compile(r"^/api/task/(?P<task_id>[^/]+)/status/?$"))
RESULT_PATH = re.compile(r"^/api/tasks/(?P<task_id>[^/]+)/result/?$")


class FastStatus(AsgiFront):
    """ASGI middleware: GET /api/tasks/<id>/ and /api/task/<id>/status/ (JSON) served here."""

    front = "status"

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
        headers = request_headers(scope)
        if WAIT_PARAM.encode() not in scope.get("query_string", b""):   # a plain poll: answered at once
            status, body, extra = await self._answer(task_id, scope, headers)
        else:
            answer = asyncio.ensure_future(self._answer(task_id, scope, headers))
            gone = asyncio.ensure_future(client_gone(receive))
            await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not answer.done():   # the client left while waiting: stop waiting (frees the BLMOVE)
                answer.cancel()
                await asyncio.gather(answer, return_exceptions=True)
                self._log_gone(scope, started)
                return
            gone.cancel()
            status, body, extra = answer.result()
        await self._respond(scope, send, status, body, {"vary": "Accept", **extra}, started)

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
        headers = request_headers(scope)
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

    async def _answer(self, task_id: str, scope: Scope, headers: dict[str, str]) -> Answer:
        try:
            self._check_host(headers)
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            seconds = wait_seconds(query.get(WAIT_PARAM, [None])[-1])
            self._check_task(task_id, headers)
            if seconds is not None:
                await wait_for_task(task_id, seconds)
            fields, results = await task_state.aread_status(settings.get_async_redis(), task_id)
            return 200, await self._status_from(task_id, fields, results), {}
        except Exception as exc:  # noqa: BLE001 - ours → 4xx/503; anything else is a bug, logged
            return self._refusal(exc)
