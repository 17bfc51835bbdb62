"""GET /metrics: the Prometheus text format 0.0.4, checked by a strict parser written here."""
from __future__ import annotations

import math
import re

import pytest

from api.metrics import FleetData
from api.prometheus import LATENCY_BUCKETS, render
from tests.api.conftest import submit_io_task
from workers.stats import histogram_of

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE_RE = re.compile(rf"^({NAME})(?:\{{(.*)\}})? (\S+)(?: (-?\d+))?$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_value(text: str) -> float:
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    assert re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", text), f"bad value {text!r}"
    return float(text)


def parse_labels(text: str | None) -> tuple[tuple[str, str], ...]:
    if not text:
        return ()
    labels, pos = [], 0
    while pos < len(text):
        match = LABEL_RE.match(text, pos)
        assert match, f"bad labels at {text[pos:]!r}"
        value = re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), match.group(2))
        labels.append((match.group(1), value))
        pos = match.end()
    names = [k for k, _ in labels]
    assert len(names) == len(set(names)), f"duplicate label in {text!r}"
    return tuple(labels)


def parse_exposition(text: str) -> dict[str, dict]:
    """Strict 0.0.4 parser: families with HELP/TYPE before their samples, no duplicates,
    histogram buckets cumulative with +Inf == _count. Returns {family: {type, samples}}."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    families: dict[str, dict] = {}
    current: str | None = None
    seen: set = set()
    for number, line in enumerate(text.splitlines(), 1):
        assert line.strip(), f"line {number}: empty line"
        if line.startswith("#"):
            parts = line.split(" ", 3)
            assert parts[1] in ("HELP", "TYPE") and re.fullmatch(NAME, parts[2]), f"line {number}: {line!r}"
            family = families.setdefault(parts[2], {"type": None, "help": None, "samples": []})
            assert not family["samples"], f"line {number}: {parts[1]} after samples of {parts[2]}"
            if parts[1] == "TYPE":
                assert family["type"] is None and parts[3] in TYPES, f"line {number}: {line!r}"
                family["type"] = parts[3]
            else:
                assert family["help"] is None, f"line {number}: second HELP"
                family["help"] = parts[3]
            current = parts[2]
            continue
        match = SAMPLE_RE.match(line)
        assert match, f"line {number}: not a sample line: {line!r}"
        name, labels = match.group(1), parse_labels(match.group(2))
        value = parse_value(match.group(3))
        kind = families[current]["type"] if current else None
        allowed = {current} | ({f"{current}_bucket", f"{current}_sum", f"{current}_count"}
                               if kind == "histogram" else set())
        assert name in allowed, f"line {number}: {name} outside its family {current}"
        assert (name, labels) not in seen, f"line {number}: duplicate series {name}{labels}"
        seen.add((name, labels))
        families[current]["samples"].append((name, dict(labels), value))
    for family_name, family in families.items():
        assert family["type"], f"{family_name} has no TYPE"
        if family["type"] == "histogram":
            buckets = [(s[1]["le"], s[2]) for s in family["samples"] if s[0].endswith("_bucket")]
            bounds = [parse_value(le) for le, _ in buckets]
            assert bounds == sorted(bounds) and bounds[-1] == math.inf, f"{family_name}: bucket order"
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), f"{family_name}: buckets not cumulative"
            count = [s[2] for s in family["samples"] if s[0] == f"{family_name}_count"]
            total = [s[2] for s in family["samples"] if s[0] == f"{family_name}_sum"]
            assert count == [counts[-1]] and len(total) == 1, f"{family_name}: _count/_sum"
        if family["type"] == "counter":
            assert all(v >= 0 for _, _, v in family["samples"])
    return families


def values(families: dict, name: str, family: str | None = None) -> dict[tuple, float]:
    return {tuple(sorted(labels.items())): value
            for sample, labels, value in families[family or name]["samples"] if sample == name}


# --- the renderer over a crafted reading ------------------------------------------------
def test_render_is_strictly_valid_and_counts_right():
    data = FleetData(
        now=1000.0,
        workers=[{"name": 'w"1\\x', "capabilities": ["io"], "state": "busy", "cpu_percent": 5.5, "rss_mb": 80},
                 {"name": "w2", "capabilities": ["all"], "state": "idle"}],
        queue_depths={"pixelfleet:io": 3, "pixelfleet:cpu+io": 0},
        counters={"submitted": 7, "completed": 5, "failed": 2, "failed_timeout": 1, "failed_job_failure": 1},
        histograms={"queue_wait": histogram_of([0.004, 0.020]), "processing": histogram_of([0.3, 7.0])},
        host={"cpu_usage": 12.0, "memory_usage": 50.5, "memory_available_gb": 1.25})
    families = parse_exposition(render(data))
    assert values(families, "pixelfleet_queue_depth")[(("capabilities", "io"), ("queue", "pixelfleet:io"))] == 3
    workers = values(families, "pixelfleet_workers")
    assert workers[(("capability", "io"), ("state", "busy"))] == 1
    assert workers[(("capability", "io"), ("state", "idle"))] == 1
    assert workers[(("capability", "gpu"), ("state", "idle"))] == 1
    assert values(families, "pixelfleet_tasks_submitted_total") == {(): 7}
    failed = values(families, "pixelfleet_tasks_failed_total")
    assert failed[(("failure_type", "timeout"),)] == 1 and failed[(("failure_type", "worker_failure"),)] == 0
    wait = values(families, "pixelfleet_task_queue_wait_seconds_bucket", "pixelfleet_task_queue_wait_seconds")
    assert wait[(("le", "0.005"),)] == 1 and wait[(("le", "0.025"),)] == 2
    processing = values(families, "pixelfleet_task_processing_seconds_bucket", "pixelfleet_task_processing_seconds")
    assert processing[(("le", "0.25"),)] == 0 and processing[(("le", "0.5"),)] == 1
    assert processing[(("le", "+Inf"),)] == 2 and len(processing) == len(LATENCY_BUCKETS) + 1
    assert values(families, "pixelfleet_task_processing_seconds_sum",
                  "pixelfleet_task_processing_seconds") == {(): 7.3}
    assert values(families, "pixelfleet_worker_cpu_percent")[(("worker", 'w"1\\x'),)] == 5.5


def test_parser_rejects_broken_expositions():
    """The parser is strict: each of these breaks a rule of the format."""
    broken = [
        "a 1",                                                     # no final newline
        "# TYPE a gauge\na{x=\"1} 1\n",                            # unterminated label
        "# TYPE a gauge\na 1\na 1\n",                              # duplicate series
        "a 1\n",                                                   # sample without TYPE
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE a gauge\na one\n",                                 # not a number
    ]
    for text in broken:
        with pytest.raises((AssertionError, KeyError, TypeError)):
            parse_exposition(text)


# --- end to end: real Redis, real tasks run by a real worker ------------------------------
@pytest.mark.timeout(120)
def test_metrics_endpoint_prometheus(api, redis_conn, burst_worker):
    for _ in range(2):
        submit_io_task(redis_conn)
    before = api.get("/metrics")
    assert before.status_code == 200
    assert before["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = parse_exposition(before.content.decode())
    assert values(families, "pixelfleet_queue_depth")[(("capabilities", "io"), ("queue", "pixelfleet:io"))] == 2
    assert values(families, "pixelfleet_redis_up") == {(): 1}
    reserved = values(families, "pixelfleet_storage_reserved_bytes")[()]
    assert reserved > 0 and values(families, "pixelfleet_storage_full") == {(): 0}   # two results to come
    assert values(families, "pixelfleet_storage_used_bytes")[()] > 0
    assert 0 < values(families, "pixelfleet_storage_high_water_bytes")[()] < values(
        families, "pixelfleet_storage_budget_bytes")[()]

    assert burst_worker(("io",)) == 2
    families = parse_exposition(api.get("/metrics").content.decode())
    assert values(families, "pixelfleet_queue_depth")[(("capabilities", "io"), ("queue", "pixelfleet:io"))] == 0
    assert values(families, "pixelfleet_tasks_submitted_total") == {(): 2}
    assert values(families, "pixelfleet_tasks_completed_total") == {(): 2}
    assert values(families, "pixelfleet_storage_reserved_bytes") == {(): 0}          # both ended
    count = values(families, "pixelfleet_task_processing_seconds_count", "pixelfleet_task_processing_seconds")
    assert count == {(): 2}


def test_metrics_endpoint_with_redis_down_still_answers(api, redis_server, monkeypatch):
    """A scrape while Redis is down says so (redis_up 0) instead of failing with a 5xx."""
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")     # nothing listens on port 1
    response = api.get("/metrics")
    assert response.status_code == 200
    assert values(parse_exposition(response.content.decode()), "pixelfleet_redis_up") == {(): 0}


def test_scrape_needs_the_token_only_when_reads_require_one(api, monkeypatch):
    monkeypatch.setenv("PIXELFLEET_API_TOKENS", "s3cret")
    assert api.get("/metrics").status_code == 200                 # reads open by default
    monkeypatch.setenv("PIXELFLEET_READ_REQUIRES_TOKEN", "1")
    refused = api.get("/metrics")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "not_authenticated"
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert api.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert api.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
    not_allowed = api.post("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
    assert not_allowed.status_code == 405 and not_allowed.json()["error"]["code"] == "method_not_allowed"


def _scrape(api) -> dict:
    response = api.get("/metrics")
    assert response.status_code == 200
    return parse_exposition(response.content.decode())


def test_counters_and_histograms_across_a_redis_outage(api, tmp_path, monkeypatch):
    """Counters and histograms never go down: left out while Redis is away (not 0, which
    Prometheus would read as a reset), the same after it comes back (AOF), then growing."""
    from tests.api.conftest import run_burst_worker
    from workers.embedded_redis import RedisServer

    server = RedisServer(data_dir=tmp_path / "redis", appendonly=True, appendfsync="always").start()
    monkeypatch.setenv("REDIS_URL", server.url)
    conn = redis_client(server.url)
    try:
        for _ in range(3):
            submit_io_task(conn)
        assert run_burst_worker(conn, ("io",)) == 3
        before = _scrape(api)
        completed = values(before, "pixelfleet_tasks_completed_total")[()]
        hist = "pixelfleet_task_processing_seconds"
        count = values(before, f"{hist}_count", hist)[()]
        buckets = values(before, f"{hist}_bucket", hist)
        assert completed == 3 and count == 3 and buckets[(("le", "+Inf"),)] == 3

        server.kill()
        down = _scrape(api)
        assert values(down, "pixelfleet_redis_up") == {(): 0}
        leaked = [name for name in down if name.startswith("pixelfleet_tasks_") or name.startswith(
            "pixelfleet_task_") or name in ("pixelfleet_queue_depth", "pixelfleet_workers")]
        assert leaked == [], f"series read from Redis reported while it is down: {leaked}"

        server.start()
        after = _scrape(api)
        assert values(after, "pixelfleet_redis_up") == {(): 1}
        assert values(after, "pixelfleet_tasks_completed_total")[()] == completed
        assert values(after, f"{hist}_count", hist)[()] == count
        assert values(after, f"{hist}_bucket", hist) == buckets

        submit_io_task(conn)
        assert run_burst_worker(conn, ("io",)) == 1
        grown = _scrape(api)
        assert values(grown, "pixelfleet_tasks_completed_total")[()] == completed + 1
        assert values(grown, f"{hist}_count", hist)[()] == count + 1
        new_buckets = values(grown, f"{hist}_bucket", hist)
        assert all(new_buckets[le] >= n for le, n in buckets.items())
    finally:
        server.stop()


def redis_client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=1)
