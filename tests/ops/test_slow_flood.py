"""No cheap way to starve the API: 50 clients flooding /api/image/slow/ against the real
server (started as tests/ops/conftest.py starts it, with the default 2 processes × 4
threads) while health checks and submits are timed.

Before the bound, twelve such requests held every thread and /api/health/ took 8.6 s.
Now each process admits PIXELFLEET_API_LONG_REQUESTS (default threads/2) long requests
and answers the rest 429 with Retry-After at once; the flooding clients (a separate
process) honour it, capped at 3 s so the pressure stays on, as polite clients would.
"""
from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import time

import pytest
import requests
from PIL import Image

from tests.ops.conftest import LiveFleet, fleet_env
from workers.embedded_redis import free_port
from workers.stats import percentile

FLEET_DB = 6
FLOODERS = 50
SLOW_DELAY_S = 10                  # the attack: GET /api/image/slow/?delay=10
FLOOD_SECONDS = 6.0
P95_LIMIT_MS = 100.0


@pytest.fixture(scope="module")
def api(redis_server, tmp_path_factory):
    import redis

    redis_url = f"redis://127.0.0.1:{redis_server.port}/{FLEET_DB}"
    redis.Redis.from_url(redis_url).flushdb()
    bind = f"127.0.0.1:{free_port()}"
    env = fleet_env(redis_url, bind)
    env.update(PIXELFLEET_API_WORKERS="2", PIXELFLEET_API_THREADS="4",   # the shipped defaults
               PIXELFLEET_API_GRACEFUL_TIMEOUT="1")   # teardown need not wait for admitted 10 s requests
    live = LiveFleet(url=f"http://{bind}", token="ops-test-token", redis_url=redis_url,
                     log_dir=tmp_path_factory.mktemp("flood-logs"), env=env)
    try:
        live.start_api()
        deadline = time.monotonic() + 60
        while True:
            try:
                live.get("/api/image/slow/?delay=0")   # both processes import the app and store the sample
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, live.logs()
                time.sleep(0.2)
        yield live
    finally:
        live.stop()


# The flood runs in its own process, so its 50 client threads do not share the probe's GIL
# (the probe's timings must be the server's, not the test's own contention).
FLOOD_SCRIPT = r"""
import json, os, sys, threading, time
import requests
url, clients, delay, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
seen, lock = {"errors": [], "retry_after": [], "codes": []}, threading.Lock()
sent_at = {}   # thread -> when its current request went out (None: not in a request)
def flood():
    me, session = threading.get_ident(), requests.Session()
    while True:
        sent_at[me] = time.monotonic()
        try:
            r = session.get(f"{url}/api/image/slow/?delay={delay}", timeout=30)
        except requests.RequestException as exc:
            sent_at[me] = None
            with lock: seen["errors"].append(repr(exc))
            time.sleep(0.5); continue
        sent_at[me] = None
        with lock:
            seen[str(r.status_code)] = seen.get(str(r.status_code), 0) + 1
            if r.status_code == 429:
                seen["retry_after"].append(r.headers.get("Retry-After"))
                seen["codes"].append(r.json()["error"]["code"])
        if r.status_code == 429:   # a polite client honours Retry-After (capped: keep the pressure on)
            time.sleep(min(3.0, float(r.headers.get("Retry-After", 1))))
for _ in range(clients):
    threading.Thread(target=flood, daemon=True).start()
print("flooding", flush=True)
time.sleep(seconds)
with lock:
    now = time.monotonic()
    # Still waiting after 2 s: admitted (a refusal takes milliseconds), sleeping out its delay.
    seen["admitted_now"] = sum(1 for t in list(sent_at.values()) if t is not None and now - t > 2.0)
    seen["retry_after"], seen["codes"] = sorted(set(seen["retry_after"])), sorted(set(seen["codes"]))
    print(json.dumps(seen), flush=True)
os._exit(0)
"""

def measure(api, probe, body, headers) -> tuple[list[float], list[float]]:
    """60 health checks and 30 submits, one after another: their times in ms."""
    health_ms, submit_ms = [], []
    for i in range(60):
        health_ms.append(timed(lambda: probe.get(f"{api.url}/api/health/", timeout=10)))
        if i % 2 == 0:
            submit_ms.append(timed(lambda: probe.post(f"{api.url}/api/tasks/", json=body,
                                                      headers=headers, timeout=10)))
        time.sleep(0.03)
    return health_ms, submit_ms


def timed(call) -> float:
    started = time.perf_counter()
    response = call()
    elapsed = (time.perf_counter() - started) * 1000
    assert response.status_code < 300, (response.status_code, response.text[:300])
    return elapsed


def test_health_and_submits_stay_fast_while_50_slow_requests_flood(api):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (9, 9, 9)).save(buffer, format="PNG")
    body = {"image_base64": base64.b64encode(buffer.getvalue()).decode(), "filters": ["grayscale"]}
    probe = requests.Session()
    headers = {"Authorization": f"Bearer {api.token}"}
    for _ in range(3):   # warm the probe's connection and both processes' code paths
        probe.get(f"{api.url}/api/health/", timeout=10)
        probe.post(f"{api.url}/api/tasks/", json=body, headers=headers, timeout=10)

    quiet_health, quiet_submit = measure(api, probe, body, headers)   # the machine's own pace, no flood
    flood = subprocess.Popen([sys.executable, "-c", FLOOD_SCRIPT, api.url, str(FLOODERS), str(SLOW_DELAY_S),
                              str(FLOOD_SECONDS)], stdout=subprocess.PIPE, text=True)
    try:
        assert flood.stdout.readline().strip() == "flooding"
        time.sleep(1.0)   # every client has sent its first request; most were turned away
        health_ms, submit_ms = measure(api, probe, body, headers)
        seen = json.loads(flood.communicate(timeout=FLOOD_SECONDS + 60)[0].splitlines()[-1])
    finally:
        if flood.poll() is None:
            flood.kill()
            flood.wait()

    # The slow endpoint still serves, boundedly: 2 processes x PIXELFLEET_API_LONG_REQUESTS (4 threads / 2).
    assert 1 <= seen["admitted_now"] <= 2 * 2, seen
    assert seen.get("429", 0) >= FLOODERS, seen
    assert seen["codes"] == ["too_busy"] and all(int(v) >= 1 for v in seen["retry_after"]), seen
    assert not seen["errors"] and not any(k.isdigit() and int(k) >= 500 for k in seen), seen
    health_p95, submit_p95 = percentile(health_ms, 95), percentile(submit_ms, 95)
    quiet = {"health": percentile(quiet_health, 95), "submit": percentile(quiet_submit, 95)}
    print(f"p95 under the flood: health {health_p95:.1f} ms, submit {submit_p95:.1f} ms "
          f"(without it: {quiet['health']:.1f}, {quiet['submit']:.1f}); flood: {seen['admitted_now']} admitted, "
          f"{seen.get('429')} x 429")
    # 100 ms p95 — or, on a machine so loaded that it misses that with no flood at all,
    # no worse than twice its own quiet pace. Starved threads (the bug) meant seconds.
    assert health_p95 < max(P95_LIMIT_MS, 2 * quiet["health"]), (quiet, sorted(health_ms))
    assert submit_p95 < max(P95_LIMIT_MS, 2 * quiet["submit"]), (quiet, sorted(submit_ms))
    assert max(health_ms + submit_ms) < 2000, sorted(health_ms + submit_ms)
