"""Closed-loop clients: N threads, each sends its next request when the last one answered.

One function per way of asking for a thumbnail, each returning the JPEG bytes:
- `pixelfleet_wait`: one call, POST /api/tasks/?wait=60 with the image (200 = the image);
- `pixelfleet_poll`: POST, then GET the status every `interval` s until it ended, then
  GET the result: what a client without `wait` does;
- `thumbor`: GET /unsafe/fit-in/WxH/<file> (thumbor reads the file itself: file loader).

Why a plain-socket client (Client) and a multipart body encoded once: the clients share
the machine with the systems they measure, so they must cost little (requests re-encodes
a 6 MB upload in Python on every call, http.client parses each response's headers with
the email package); every system gets the same client.
"""
from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlsplit

from workers.stats import percentile

ENDED = ("finished", "failed", "canceled", "stopped")
NETWORK_ERRORS = (OSError, ValueError)


class ProtocolError(OSError):
    """The server's answer is not HTTP/1.1 this client can read (counted as a network error)."""


class Client:
    """One keep-alive HTTP/1.1 connection on a plain socket; reconnects once when the
    server closed it.

    Why not http.client: the clients run on the machine they measure, and http.client
    parses every response's headers with the email package: about 200 us of client CPU
    per request, ten times what this costs, which a polling client (ten requests per
    image) took from the servers. Every system measured uses this same client. It reads
    Content-Length and chunked bodies, and honours `Connection: close`.
    """

    def __init__(self, base_url: str, timeout: float = 90.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname, parts.port or 80, timeout
        self.host_header = f"{self.host}:{self.port}".encode()
        self.sock: socket.socket | None = None
        self.buffer = b""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        head = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + self.host_header]
        head += [f"{name}: {value}".encode("latin-1") for name, value in (headers or {}).items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head.append(b"Content-Length: %d" % len(body or b""))
        message = b"\r\n".join(head) + b"\r\n\r\n"
        for attempt in (1, 2):
            fresh = self.sock is None
            try:
                if fresh:
                    self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.buffer = b""
                if body:
                    self.sock.sendall(message + body if len(body) < 65536 else message)
                    if len(body) >= 65536:
                        self.sock.sendall(body)
                else:
                    self.sock.sendall(message)
                return self._response(method)
            except (OSError, ValueError):   # ValueError: a length or chunk size that is not a number
                self.close()
                if attempt == 2 or fresh:   # a new connection that fails is an answer, not a stale one
                    raise
        raise AssertionError("unreachable")

    def _response(self, method: str) -> tuple[int, dict[str, str], bytes]:
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            self._fill()
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        self.buffer = self.buffer[end + 4:]
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(rest[:3])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            payload = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            payload = self._chunked()
        elif "content-length" in headers:
            payload = self._exactly(int(headers["content-length"]))
        else:   # until the server closes
            while True:
                try:
                    self._fill()
                except ProtocolError:
                    break
            payload, self.buffer = self.buffer, b""
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, payload

    def _fill(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(262144)
        if not data:
            raise ProtocolError("the server closed the connection")
        self.buffer += data

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        payload, self.buffer = self.buffer[:size], self.buffer[size:]
        return payload

    def _chunked(self) -> bytes:
        parts = []
        while True:
            while b"\r\n" not in self.buffer:
                self._fill()
            line, _, self.buffer = self.buffer.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while b"\r\n\r\n" not in b"\r\n" + self.buffer:   # trailers, then the blank line
                    self._fill()
                _, _, self.buffer = (b"\r\n" + self.buffer).partition(b"\r\n\r\n")
                return b"".join(parts)
            parts.append(self._exactly(size))
            self._exactly(2)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.buffer = b""


Fetch = Callable[[Client], bytes]


class BadAnswer(Exception):
    """The system answered, but not with the thumbnail."""


@dataclass
class RunResult:
    """One timed run of one system: completions and their latencies (s)."""

    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def merged(self, other: "RunResult") -> "RunResult":
        return RunResult(self.seconds + other.seconds, self.latencies + other.latencies, self.errors + other.errors)

    def summary(self) -> dict:
        ms = [x * 1000 for x in self.latencies]
        return {"images": len(ms), "seconds": round(self.seconds, 2),
                "images_per_s": round(len(ms) / self.seconds, 2) if self.seconds else None,
                "p50_ms": _round(percentile(ms, 50)), "p95_ms": _round(percentile(ms, 95)),
                "p99_ms": _round(percentile(ms, 99)), "errors": len(self.errors),
                "first_errors": sorted(set(self.errors))[:3]}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _jpeg(status: int, headers: dict[str, str], body: bytes) -> bytes:
    if status != 200 or not body.startswith(b"\xff\xd8"):
        raise BadAnswer(f"HTTP {status} {headers.get('content-type')}: {body[:160]!r}")
    return body


def multipart(image: bytes, fields: dict[str, str]) -> tuple[bytes, str]:
    """A multipart/form-data body (fields + the image as `image`) and its content type."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="photo.jpg"\r\n'
                 "Content-Type: image/jpeg\r\n\r\n".encode() + image + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def pixelfleet_form(box: int, quality: int) -> dict[str, str]:
    steps = [{"filter": "resize", "params": {"width": box}}]   # landscape inputs: width is the long side
    return {"steps": json.dumps(steps), "format": "jpeg", "quality": str(quality)}


_COMMENT = b"\xff\xfe\x00\x12"   # a JPEG COM segment right after SOI: 16 bytes of text
_MARK_BYTES = 16


def pixelfleet_wait(url: str, image: bytes, box: int, quality: int, distinct: bool = False) -> tuple[str, Fetch]:
    """One call per image. `distinct`: every upload differs (a random JPEG comment), so
    the fleet's content-addressed store never finds it already stored."""
    if not distinct:
        body, content_type = multipart(image, pixelfleet_form(box, quality))
    else:
        body, content_type = multipart(image[:2] + _COMMENT + b"0" * _MARK_BYTES + image[2:],
                                       pixelfleet_form(box, quality))
        mark = body.index(b"\xff\xd8" + _COMMENT) + 2 + len(_COMMENT)
    headers = {"Content-Type": content_type}

    def fetch(client: Client) -> bytes:
        data = body if not distinct else body[:mark] + uuid.uuid4().hex[:_MARK_BYTES].encode() + body[mark + _MARK_BYTES:]
        return _jpeg(*client.request("POST", "/api/tasks/?wait=60", data, headers))
    return url, fetch


def pixelfleet_poll(url: str, image: bytes, box: int, quality: int, interval: float) -> tuple[str, Fetch]:
    body, content_type = multipart(image, pixelfleet_form(box, quality))
    headers = {"Content-Type": content_type}

    def fetch(client: Client) -> bytes:
        status, _, answer = client.request("POST", "/api/tasks/", body, headers)
        if status != 202:
            raise BadAnswer(f"submit: HTTP {status}: {answer[:160]!r}")
        task_id = json.loads(answer)["task_id"]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            time.sleep(interval)
            status, _, answer = client.request("GET", f"/api/tasks/{task_id}/")
            if status == 200 and json.loads(answer)["status"] in ENDED:
                return _jpeg(*client.request("GET", f"/api/tasks/{task_id}/result/"))
        raise BadAnswer(f"task {task_id} did not end in 90 s")
    return url, fetch


def thumbor(url: str, filename: str, box: int) -> tuple[str, Fetch]:
    path = f"/unsafe/fit-in/{box}x{box}/{filename}"

    def fetch(client: Client) -> bytes:
        return _jpeg(*client.request("GET", path))
    return url, fetch


def closed_loop(system: tuple[str, Fetch], clients: int, seconds: float) -> RunResult:
    """`clients` threads asking one after another for `seconds`; what ended in time counts."""
    url, fetch = system
    result = RunResult(seconds)
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client() -> None:
        session = Client(url)
        try:
            try:
                fetch(session)   # warm-up: connection, first-request paths (not counted)
            except (*NETWORK_ERRORS, BadAnswer, ValueError, KeyError) as exc:
                with lock:
                    result.errors.append(f"warm-up: {type(exc).__name__}: {str(exc)[:200]}")
            start.wait()
            while True:
                began = time.monotonic()
                if began >= deadline[0]:
                    return
                try:
                    fetch(session)
                except (*NETWORK_ERRORS, BadAnswer, ValueError, KeyError) as exc:
                    with lock:
                        result.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                    continue
                ended = time.monotonic()
                if ended <= deadline[0]:
                    with lock:
                        result.latencies.append(ended - began)
        finally:
            session.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = float("inf")
    start.wait()
    deadline[0] = time.monotonic() + seconds
    for thread in threads:
        thread.join(timeout=seconds + 180)
    return result
