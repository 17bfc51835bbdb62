"""What every ASGI fast path of the API shares: answering as Django would.

The hot requests (status polls: api.asgi_status; image submits: api.asgi_submit) are
answered in front of Django, where they cost no per-request thread. They must still be
indistinguishable from Django's answers: the same host check, error bodies and codes,
security headers, request counter and access line. That lives here, once.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Awaitable, Callable

from django.conf import settings as django_settings
from django.http.request import split_domain_port, validate_host

from api import request_counter
from api.exceptions import InvalidInput, error_body, to_response_parts
from workers.logs import get_logger, log_event

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
Answer = tuple[int, Any, dict[str, str]]     # status, body (bytes + extra["content-type"], or JSON), headers

log = get_logger("webapp.access")


def security_headers() -> list[tuple[bytes, bytes]]:
    """The headers Django's security and clickjacking middleware add, from the same settings."""
    headers = [(b"x-frame-options", getattr(django_settings, "X_FRAME_OPTIONS", "DENY").encode())]
    if getattr(django_settings, "SECURE_CONTENT_TYPE_NOSNIFF", True):
        headers.append((b"x-content-type-options", b"nosniff"))
    if policy := getattr(django_settings, "SECURE_REFERRER_POLICY", "same-origin"):
        headers.append((b"referrer-policy", (policy if isinstance(policy, str) else ",".join(policy)).encode()))
    if coop := getattr(django_settings, "SECURE_CROSS_ORIGIN_OPENER_POLICY", "same-origin"):
        headers.append((b"cross-origin-opener-policy", coop.encode()))
    return headers


def request_headers(scope: Scope) -> dict[str, str]:
    """The request's headers, names in lower case (the last of a repeated one wins)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}


async def client_gone(receive: Receive) -> None:
    """Returns when the client disconnects (what is left of the body is read and skipped)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class AsgiFront:
    """An ASGI middleware that answers some requests itself and passes the rest to `app`.

    Its access lines carry `front=<name>`: which requests skipped Django is visible in the
    logs (and checked by the tests), where the answers themselves are the same."""

    front = "asgi"

    def __init__(self, app: App) -> None:
        self.app = app
        self.extra_headers = security_headers()
        self.allowed_hosts = list(django_settings.ALLOWED_HOSTS)

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

    def _check_host(self, headers: dict[str, str]) -> None:
        host = headers.get("host", "")
        domain, _port = split_domain_port(host)
        if not domain or not validate_host(domain, self.allowed_hosts):
            raise InvalidInput(f"Invalid HTTP_HOST header: {host!r:.80}", code="bad_request")

    def _refusal(self, exc: Exception) -> Answer:
        """Ours → their 4xx/503; anything else is a bug: logged, and a 500 that says so."""
        parts = to_response_parts(exc)
        if parts is not None:
            return parts
        log_event(log, "unhandled_error", logging.ERROR, exc_info=exc, view=type(self).__name__)
        return 500, error_body("internal_error", "The server failed to handle this request; "
                               "it has been logged."), {}

    def _account(self, scope: Scope, status: int, body: Any, length: int, started: float) -> None:
        """The same request count and access line as api.middleware.RequestLogMiddleware."""
        request_counter.count()
        fields = {"method": scope["method"], "path": scope["path"], "status": status,
                  "ms": round((time.perf_counter() - started) * 1000, 1),
                  "client": (scope.get("client") or ("-",))[0], "bytes": length, "front": self.front}
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            fields["error"] = body["error"].get("code")
        log_event(log, "request", logging.ERROR if status >= 500 else logging.INFO, **fields)

    def _log_gone(self, scope: Scope, started: float) -> None:
        """The access line of a request whose client left before the answer (499)."""
        log_event(log, "request", method=scope["method"], path=scope["path"], status=499,
                  ms=round((time.perf_counter() - started) * 1000, 1),
                  client=(scope.get("client") or ("-",))[0], bytes=0, error="client_gone", front=self.front)
