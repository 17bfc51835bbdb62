"""A small HTTP client for the Pixelfleet API, shared by the stress scripts and the dashboard.

Operators run these tools from anywhere, so they speak only HTTP (never Redis). Every call
returns an `ApiResponse` instead of raising on transport errors: a load script must count a
refused connection as a result, and the dashboard must keep drawing when the API is down.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import requests

DEFAULT_URL = "http://localhost:8000"
URL_ENV = "PIXELFLEET_URL"
TOKEN_ENV = "PIXELFLEET_TOKEN"


def default_url() -> str:
    """PIXELFLEET_URL or http://localhost:8000."""
    return (os.environ.get(URL_ENV) or "").strip() or DEFAULT_URL


def default_token() -> str | None:
    """PIXELFLEET_TOKEN, or None when unset."""
    return (os.environ.get(TOKEN_ENV) or "").strip() or None


@dataclass
class ApiResponse:
    """One HTTP exchange: status 0 means no HTTP answer at all (refused, timeout, DNS)."""

    status: int
    elapsed_ms: float
    data: Any = None            # parsed JSON body, when there was one
    content: bytes = b""        # raw body (for images)
    content_type: str = ""
    error: str | None = None    # transport error or non-JSON body, in words

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error_code(self) -> str:
        """The API's error code (`{"error": {"code": ...}}`), else the HTTP status in words."""
        if isinstance(self.data, dict):
            err = self.data.get("error")
            if isinstance(err, dict) and err.get("code"):
                return str(err["code"])
        if self.status == 0:
            return "connection_error"
        return f"http_{self.status}"

    def error_message(self) -> str:
        """A one-line reason: the API's message when it gave one."""
        if isinstance(self.data, dict):
            err = self.data.get("error")
            if isinstance(err, dict) and err.get("message"):
                return str(err["message"])
            if isinstance(err, str):
                return err
            if self.data.get("detail"):
                return str(self.data["detail"])
        return self.error or f"HTTP {self.status}"


class ApiClient:
    """Thread-safe: each thread gets its own requests.Session (connection reuse, no sharing)."""

    def __init__(self, url: str | None = None, token: str | None = None,
                 timeout: float = 10.0) -> None:
        self.url = (url or default_url()).rstrip("/")
        self.token = token if token is not None else default_token()
        self.timeout = timeout
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = "pixelfleet-ops/1"
            if self.token:
                session.headers["Authorization"] = f"Bearer {self.token}"
            self._local.session = session
        return session

    def absolute(self, path_or_url: str) -> str:
        """`/api/x/` → full URL; a full URL given by the API is kept as is."""
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return f"{self.url}/{path_or_url.lstrip('/')}"

    def request(self, method: str, path: str, *, timeout: float | None = None,
                **kwargs: Any) -> ApiResponse:
        """Send one request; never raises for network trouble or a non-JSON body."""
        started = time.perf_counter()
        try:
            resp = self._session().request(method, self.absolute(path),
                                           timeout=timeout or self.timeout, **kwargs)
        except requests.RequestException as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return ApiResponse(0, elapsed, error=describe_error(exc))
        elapsed = (time.perf_counter() - started) * 1000
        ctype = resp.headers.get("Content-Type", "")
        data, error = None, None
        if "json" in ctype:
            try:
                data = resp.json()
            except ValueError:
                error = "response is not valid JSON"
        return ApiResponse(resp.status_code, elapsed, data=data, content=resp.content,
                           content_type=ctype, error=error)

    def get(self, path: str, **kwargs: Any) -> ApiResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> ApiResponse:
        return self.request("POST", path, **kwargs)


def describe_error(exc: requests.RequestException) -> str:
    """A short reason for a failed request ('connection refused', 'no answer within 3 s')."""
    text = str(exc)
    if isinstance(exc, requests.ReadTimeout):
        return "no answer in time (read timeout)"
    if isinstance(exc, requests.ConnectTimeout):
        return "connect timeout"
    for needle, said in (("Connection refused", "connection refused"),
                         ("Name or service not known", "unknown host"),
                         ("Connection reset", "connection reset"),
                         ("RemoteDisconnected", "connection closed without a response")):
        if needle in text:
            return said
    return f"{type(exc).__name__}: {_short(exc)}"


def _short(exc: Exception, limit: int = 160) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
