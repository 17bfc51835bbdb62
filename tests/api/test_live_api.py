"""The API as it really runs: gunicorn, 2 processes x 4 threads, a real worker, real HTTP.

What only a real server shows: psutil's per-thread CPU state under gunicorn's threads
(the monitor read "CPU 0.0%"), one uptime across API processes (it alternated), the
original commands of docs/api_ops.md run verbatim with curl, and schemathesis against
the live OpenAPI schema (positive data accepted, no 5xx, status codes and bodies as
documented).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.ops.conftest import running_fleet

ROOT = Path(__file__).resolve().parents[2]
FLEET_DB = 5
SCHEMATHESIS_CONFIG = Path(__file__).with_name("schemathesis.toml")
HEAVY_BATCH_MODES = r"^/api/process-batch/(compare|compare-all|multiprocessing|stress|threading)/$"


@pytest.fixture(scope="module")
def live_api(redis_server, tmp_path_factory):
    """gunicorn with the project's config (2 processes, 4 threads each), open (no token), and
    one io+cpu worker, on their own Redis database."""
    with running_fleet(redis_server, FLEET_DB, tmp_path_factory.mktemp("live-api-logs"), {"live-all": "io,cpu"},
                       token="", PIXELFLEET_API_WORKERS="2", PIXELFLEET_API_THREADS="4") as fleet:
        yield fleet


def _burn(seconds: float) -> subprocess.Popen:
    """A process that keeps one core busy for `seconds`."""
    return subprocess.Popen([sys.executable, "-c", f"import time\nend = time.time() + {seconds}\n"
                             "while time.time() < end: pass"])


def test_host_cpu_under_gunicorn_threads_is_measured_not_the_priming_zero(live_api):
    """psutil keeps cpu_percent(None)'s previous sample per thread: each gunicorn thread's
    first reading said 0.0 on a busy host. Every reading, from every thread, must see load."""
    burners = [_burn(6.0) for _ in range(os.cpu_count() or 2)]
    try:
        readings = []
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(4):      # rounds > 1 s apart: each takes a fresh reading
                batch = pool.map(lambda _: live_api.get("/api/metrics/").json()["cpu_usage"], range(8))
                readings += list(batch)
                time.sleep(1.1)
    finally:
        for proc in burners:
            proc.kill()
            proc.wait()
    assert len(readings) == 32
    assert min(readings) > 5.0, readings


def test_uptime_is_the_api_servers_not_the_answering_process(live_api):
    seen: dict[int, list[dict]] = {}
    deadline = time.monotonic() + 30
    while len(seen) < 2 and time.monotonic() < deadline:
        with requests.Session() as fresh:      # a new connection: either process may answer
            body = fresh.get(f"{live_api.url}/api/stats/", timeout=10).json()
        seen.setdefault(body["process"]["pid"], []).append(body)
    assert len(seen) == 2, "only one gunicorn process answered in 30 s"
    bodies = [b for answers in seen.values() for b in answers]
    assert len({b["started_at"] for b in bodies}) == 1          # one server start, whoever answers
    ordered = sorted(bodies, key=lambda b: b["uptime_s"])
    assert all(b["uptime_s"] >= b["process"]["uptime_s"] - 0.5 for b in bodies)
    assert ordered[-1]["uptime_s"] - ordered[0]["uptime_s"] < 35


def doc_commands(path: Path) -> list[str]:
    """Every complete `$ ` command of the page's console blocks (continuations joined);
    abbreviated ones (`curl ...`) and comments are left out."""
    commands, in_console, pending = [], False, ""
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            in_console = line.strip() == "```console"
            continue
        if not in_console:
            continue
        if pending:
            pending += "\n" + line
        elif line.startswith("$ "):
            pending = line[2:]
        if pending and not pending.endswith("\\"):
            if "..." not in pending and "…" not in pending and not pending.startswith("#"):
                commands.append(pending)
            pending = ""
    return commands


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_docs_api_ops_commands_run_verbatim(live_api, tmp_path):
    from tests.api.conftest import png_bytes

    commands = doc_commands(ROOT / "docs" / "api_ops.md")
    assert any("'{\"filters\": [\"resize\", \"blur\"]}'" in c and "/compare/" in c for c in commands)
    assert any("/compare-all/" in c and "'{\"filters\": [\"resize\", \"blur\"]}'" in c for c in commands)
    (tmp_path / "in.png").write_bytes(png_bytes(64, 48))
    env = {**os.environ, "PATH": os.environ.get("PATH", "")}
    ran = 0
    for command in commands:
        live = command.replace("http://127.0.0.1:8000", live_api.url)
        if command.startswith("BODY="):
            env["BODY"] = json.loads(json.dumps(re.match(r"BODY='(.*)'$", command).group(1)))
            continue
        out = subprocess.run(["bash", "-c", live], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=150)
        assert out.returncode == 0, (command, out.stderr)
        text = out.stdout.strip()
        if text.startswith("{"):
            body = json.loads(text)
            assert "error" not in body, (command, text[:500])
        elif "-o sample_4k.jpg" in command:
            assert (tmp_path / "sample_4k.jpg").read_bytes()[:3] == b"\xff\xd8\xff", command
        elif "-o sample_4k.png" in command:
            assert (tmp_path / "sample_4k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", command
        elif command.startswith("curl -si"):
            assert text.startswith("HTTP/1.1 200"), (command, text[:300])
        ran += 1
    assert ran >= 8, commands


def run_schemathesis(url: str, *args: str, timeout: float, config: Path = SCHEMATHESIS_CONFIG,
                     cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The schemathesis CLI; run in `cwd` (a temp folder) so its .schemathesis/ cache stays out
    of the repository."""
    st = Path(sys.executable).with_name("schemathesis")
    return subprocess.run([str(st), "--config-file", str(config), "run", f"{url}/api/schema/",
                           "--mode", "positive", "--seed", "20261202", "--request-timeout", "60",
                           "--no-color", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd)


def _summary(out: subprocess.CompletedProcess) -> str:
    text = out.stdout + out.stderr
    return text[text.find("=== FAILURES"):][:6000] if "=== FAILURES" in text else text[-4000:]


def test_schemathesis_finds_the_schema_as_strict_as_the_validation(live_api, tmp_path):
    """Every operation (the heavy in-process batch modes and the slow download aside; the
    slow test runs them): schema-valid requests accepted, no 5xx, documented codes and bodies.
    `?wait=` is pinned to 0.2 s here (a queued GPU task would hold each request up to 60 s)."""
    quick = tmp_path / "schemathesis.toml"
    quick.write_text(SCHEMATHESIS_CONFIG.read_text() + '\n[parameters]\n"query.wait" = 0.2\n')
    out = run_schemathesis(live_api.url, "-n", "3", "-w", "2", "--max-failures", "20",
                           "--exclude-path-regex", HEAVY_BATCH_MODES, "--exclude-path", "/api/image/slow/",
                           timeout=170, config=quick, cwd=tmp_path)
    assert out.returncode == 0, _summary(out)
    assert "generated" in out.stdout and "Server error" not in out.stdout, _summary(out)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_schemathesis_on_every_operation_at_length(live_api, tmp_path):
    out = run_schemathesis(live_api.url, "-n", "25", "-w", "4", "--max-failures", "50", timeout=880, cwd=tmp_path)
    assert out.returncode == 0, _summary(out)
