"""An image submit (POST /api/tasks/, multipart), answered at the ASGI layer: the API's
costliest request, kept cheap.

Why in front of Django: under Django's ASGI handler a submit paid for the body three
times in Python — spooled into a temporary file in 64 KB writes, re-read through the
multipart parser's chunk iterators into an upload handler's buffer, read out again — plus
a thread created and joined for every request (the handler's per-request thread-sensitive
executor). For a 6 MB photo that was 18 ms of the API's ~20 ms per submit, CPU the
workers on the same machine needed. Here the body is joined once, the form is split
with bytes.find (api.multipart_fast), and the checks, storing and enqueueing run in a
thread of one long-lived pool.

Same answers as the Django path: the same permission and throttle (api.auth,
api.throttling), the same parsing of fields (api.inputs via views_tasks.submit, which
is the one place a submit is checked, stored and enqueued), the same `?wait=S` answer
(api.views_wait.waited_submit), the same error bodies, headers, access line and request
counter (api.asgi_front). Anything else — JSON or urlencoded bodies, a form the fast
parser declines, a browser asking for HTML — goes on to Django with its body replayed,
and is answered there exactly as before.
"""
from __future__ import annotations

import asyncio
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from django.http import QueryDict
from django.utils.datastructures import CaseInsensitiveMapping, MultiValueDict
from rest_framework import exceptions as drf

from api import multipart_fast, views_tasks
from api.asgi_front import Answer, AsgiFront, Receive, Scope, Send, client_gone, request_headers
from api.auth import ReadPermission
from api.throttling import SubmitThrottle
from api.views_wait import WAIT_PARAM, waited_submit, wait_seconds
from workers.settings import env_int

SUBMIT_PATH = re.compile(r"^/api/tasks/?$")
# Submits being checked and enqueued at once per API process; more wait for a thread
# (their bodies are already read, within PIXELFLEET_MAX_REQUEST_BYTES each).
SUBMIT_THREADS = env_int("PIXELFLEET_API_SUBMIT_THREADS", 16)
RESPONSE_HEADERS = {"Vary": "Accept", "Allow": "GET, POST, HEAD, OPTIONS"}   # what DRF's view adds

_executor: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """One pool per process, made on first use (gunicorn forks before any request)."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=SUBMIT_THREADS, thread_name_prefix="submit")
    return _executor


@dataclass
class FormRequest:
    """What views_tasks.submit, ReadPermission and SubmitThrottle read of a DRF request,
    for a form parsed here: `data` is fields and files together, as DRF's request.data is."""

    data: QueryDict
    FILES: MultiValueDict
    content_type: str
    META: dict[str, str]
    headers: CaseInsensitiveMapping
    pixelfleet_wait_one: bool = False
    method: str = "POST"


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, joined once; None when the client left (or BodyLimit cut it off)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def replayed(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` in one message, then whatever the client sends next."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()
    return replay


def _wants_json(headers: dict[str, str]) -> bool:
    """An API client (no Accept, JSON or anything); a browser's HTML form goes to DRF."""
    accept = headers.get("accept", "")
    return not accept or "text/html" not in accept and ("json" in accept or "*/*" in accept)


class FastSubmit(AsgiFront):
    """ASGI middleware: POST /api/tasks/ with a plain multipart form served here."""

    front = "submit"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not SUBMIT_PATH.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = request_headers(scope)
        content_type = headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data") or not _wants_json(headers):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        body = await read_body(receive)
        if body is None:
            return
        form = multipart_fast.parse(body, content_type.encode("latin-1"))
        if form is None:
            await self.app(scope, replayed(body, receive), send)
            return
        del body    # the files are slices of it; the rest is not needed
        seconds: float | None = None
        try:
            self._check_host(headers)
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            seconds = wait_seconds(query.get(WAIT_PARAM, [None])[-1])
            request = self._request(scope, headers, form, one_task=seconds is not None)
        except Exception as exc:  # noqa: BLE001 - ours → 4xx; anything else is a bug, logged
            status, data, extra = self._refusal(exc)
        else:
            try:
                status, data, extra = await asyncio.get_running_loop().run_in_executor(_pool(), _submit, request)
            except Exception as exc:  # noqa: BLE001 - as the DRF view answers its errors
                status, data, extra = self._refusal(exc)
                extra = {**RESPONSE_HEADERS, **extra}
        if seconds is not None and status == 202 and "task_id" in data:
            waited = await self._wait(scope, receive, data, seconds, started)
            if waited is False:
                return
            if waited is not None:
                status, data, extra = waited
        await self._respond(scope, send, status, data, extra, started)

    async def _wait(self, scope: Scope, receive: Receive, accepted: dict[str, Any], seconds: float,
                    started: float) -> Answer | None | bool:
        """waited_submit's answer (None: the wait ran out); False when the client left."""
        answer = asyncio.ensure_future(waited_submit(accepted, seconds))
        gone = asyncio.ensure_future(client_gone(receive))
        await asyncio.wait({answer, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not answer.done():   # the client left while waiting: stop waiting (frees the BLMOVE)
            answer.cancel()
            await asyncio.gather(answer, return_exceptions=True)
            self._log_gone(scope, started)
            return False
        gone.cancel()
        try:
            return answer.result()
        except Exception as exc:  # noqa: BLE001 - Redis down → 503; anything else is a bug, logged
            return self._refusal(exc)

    @staticmethod
    def _request(scope: Scope, headers: dict[str, str], form: multipart_fast.Form, one_task: bool) -> FormRequest:
        fields, files = form
        data = fields.copy()        # DRF's request.data: the fields and the files together
        data.update(files)
        meta = {"REMOTE_ADDR": (scope.get("client") or ("",))[0] or "",
                "HTTP_AUTHORIZATION": headers.get("authorization", "")}
        return FormRequest(data=data, FILES=files, content_type=headers.get("content-type", ""), META=meta,
                           headers=CaseInsensitiveMapping(headers), pixelfleet_wait_one=one_task)


def _submit(request: FormRequest) -> Answer:
    """The DRF view's steps, in the order it takes them: permission, throttle, submit."""
    ReadPermission().has_permission(request, None)
    throttle = SubmitThrottle()
    if not throttle.allow_request(request, None):
        raise drf.Throttled(throttle.wait())
    response = views_tasks.submit(request, source="api")
    headers = {name: value for name, value in response.items() if name.lower() != "content-type"}
    return response.status_code, response.data, {**RESPONSE_HEADERS, **headers}
