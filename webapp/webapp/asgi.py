"""ASGI entry point: what `make run` serves (gunicorn + uvicorn workers, webapp/gunicorn.conf.py).

Why ASGI: `?wait=` requests wait in the event loop without holding a thread (api.views_wait);
every other view is a sync DRF view that Django runs in a thread per request. Status
polls (api.asgi_status) and multipart image submits (api.asgi_submit) are answered in
front of Django, where they cost no thread of their own.

Django's ASGI handler reads the whole request body before any middleware runs, so the
request-size limit (MAX_REQUEST_BYTES) is enforced here too, in front of it: a declared
Content-Length over the limit gets its 413 at once, and a chunked body is cut off once
it passes the limit, so an oversized upload never fills memory or a temp file.
"""
from __future__ import annotations

import json
import os
from typing import Any, Awaitable, Callable

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _error(status: int, code: str, message: str, details: Any = None) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": details}}).encode()


class BodyLimit:
    """ASGI middleware: refuse or cut off request bodies larger than `limit` bytes."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.limit:
            await self._refuse(send, int(declared))
            return
        seen = 0
        started = False

        async def limited() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:   # a chunked body past the limit: Django stops reading
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited, tracked)
        if seen > self.limit and not started:   # Django gave up on the body: say why
            await self._refuse(send, seen)

    async def _refuse(self, send: Send, length: int) -> None:
        body = _error(413, "request_too_large",
                      f"The request body has {length} bytes or more; the limit is {self.limit} bytes "
                      "(PIXELFLEET_MAX_REQUEST_BYTES; images are limited to PIXELFLEET_MAX_BYTES each).",
                      {"bytes": length, "limit": self.limit})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


django_application = get_asgi_application()

from django.conf import settings as _settings  # noqa: E402  (configured by get_asgi_application)

from api.asgi_status import FastStatus  # noqa: E402  (needs the apps loaded)
from api.asgi_submit import FastSubmit  # noqa: E402

# Outermost first: the size guard, then the image submits and the status polls answered
# without Django's thread hops (api/asgi_submit.py, api/asgi_status.py), then Django.
application = BodyLimit(FastSubmit(FastStatus(django_application)), _settings.MAX_REQUEST_BYTES)
