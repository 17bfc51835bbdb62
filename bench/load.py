"""Closed-loop clients: N threads, each sends its next request when the last one answered.

One function per way of asking for a thumbnail, each returning the JPEG bytes:
- `pixelfleet_wait`: one call, POST /api/tasks/?wait=60 with the image (200 = the image);
- `pixelfleet_poll`: POST, then GET the status every `interval` s until it ended, then
  GET the result: what a client without `wait` does;
- `thumbor`: GET /unsafe/fit-in/WxH/<file> (thumbor reads the file itself: file loader).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import requests

from workers.stats import percentile

Fetch = Callable[[requests.Session], bytes]
ENDED = ("finished", "failed", "canceled", "stopped")


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


def _jpeg(response: requests.Response) -> bytes:
    if response.status_code != 200 or not response.content.startswith(b"\xff\xd8"):
        raise BadAnswer(f"HTTP {response.status_code} {response.headers.get('Content-Type')}: "
                        f"{response.content[:160]!r}")
    return response.content


def pixelfleet_form(box: int, quality: int) -> dict[str, str]:
    steps = [{"filter": "resize", "params": {"width": box}}]   # landscape inputs: width is the long side
    return {"steps": json.dumps(steps), "format": "jpeg", "quality": str(quality)}


def pixelfleet_wait(url: str, image: bytes, box: int, quality: int) -> Fetch:
    form = pixelfleet_form(box, quality)

    def fetch(session: requests.Session) -> bytes:
        return _jpeg(session.post(f"{url}/api/tasks/?wait=60", files={"image": ("photo.jpg", image, "image/jpeg")},
                                  data=form, timeout=90))
    return fetch


def pixelfleet_poll(url: str, image: bytes, box: int, quality: int, interval: float) -> Fetch:
    form = pixelfleet_form(box, quality)

    def fetch(session: requests.Session) -> bytes:
        accepted = session.post(f"{url}/api/tasks/", files={"image": ("photo.jpg", image, "image/jpeg")},
                                data=form, timeout=90)
        if accepted.status_code != 202:
            raise BadAnswer(f"submit: HTTP {accepted.status_code}: {accepted.content[:160]!r}")
        task_id = accepted.json()["task_id"]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            time.sleep(interval)
            state = session.get(f"{url}/api/tasks/{task_id}/", timeout=30).json()["status"]
            if state in ENDED:
                return _jpeg(session.get(f"{url}/api/tasks/{task_id}/result/", timeout=30))
        raise BadAnswer(f"task {task_id} did not end in 90 s")
    return fetch


def thumbor(url: str, filename: str, box: int) -> Fetch:
    def fetch(session: requests.Session) -> bytes:
        return _jpeg(session.get(f"{url}/unsafe/fit-in/{box}x{box}/{filename}", timeout=90))
    return fetch


def closed_loop(fetch: Fetch, clients: int, seconds: float) -> RunResult:
    """`clients` threads asking one after another for `seconds`; what ended in time counts."""
    result = RunResult(seconds)
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client() -> None:
        with requests.Session() as session:
            try:
                fetch(session)   # warm-up: connection, first-request paths (not counted)
            except (requests.RequestException, BadAnswer, ValueError, KeyError) as exc:
                with lock:
                    result.errors.append(f"warm-up: {type(exc).__name__}: {str(exc)[:200]}")
            start.wait()
            while True:
                began = time.monotonic()
                if began >= deadline[0]:
                    return
                try:
                    fetch(session)
                except (requests.RequestException, BadAnswer, ValueError, KeyError) as exc:
                    with lock:
                        result.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                    continue
                ended = time.monotonic()
                if ended <= deadline[0]:
                    with lock:
                        result.latencies.append(ended - began)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = float("inf")
    start.wait()
    deadline[0] = time.monotonic() + seconds
    for thread in threads:
        thread.join(timeout=seconds + 180)
    return result
