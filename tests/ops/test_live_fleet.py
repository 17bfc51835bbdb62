"""The operator tools against a live fleet: real Redis, gunicorn API, worker processes.

Each tool runs as a separate process, by path, the way an operator starts it. Counts in
the stress reports are checked against what the API itself recorded (/api/stats/). The
last test stops the workers, so it must stay last in this module.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = "simple_monitoring/cli.py"
ROOT = Path(__file__).resolve().parents[2]


def stats(fleet) -> dict:
    return fleet.get("/api/stats/").json()


def test_check_passes_on_a_healthy_fleet(live_fleet):
    out = live_fleet.tool(CLI, "check")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    for name in ("API reachable", "Redis reachable", "workers with capability io",
                 "workers with capability cpu", "end-to-end task"):
        assert any(line.startswith(f"✓ {name}") for line in lines), (name, out.stdout)
    assert any(line.startswith("✗ GPU workers") and "informational" in line for line in lines)
    assert lines[-1].startswith("Passed: ") and lines[-1].endswith("Failed: 0")


def test_metrics_json_matches_the_api(live_fleet):
    live_fleet.wait_until_idle()
    out = live_fleet.tool(CLI, "metrics", "--json")
    assert out.returncode == 0, out.stderr
    ours = json.loads(out.stdout)
    api = live_fleet.get("/api/metrics/").json()
    assert set(ours) == set(api)
    for key in ("active_workers", "busy_workers", "queue_length", "queues", "tasks",
                "workers_by_capability", "success_rate", "scaling_recommendation"):
        assert ours[key] == api[key], key
    text = live_fleet.tool(CLI, "metrics")
    assert text.returncode == 0
    for section in ("System:", "Workers:", "Scaling recommendation:", "Throughput:", "Latency"):
        assert section in text.stdout


def test_monitor_renders_one_frame(live_fleet):
    out = live_fleet.tool(CLI, "monitor", "--once", "--width", "140")
    assert out.returncode == 0, out.stderr
    for needle in ("API ok", "Redis ok", "ops-io", "ops-all", "Queue depth", "Latency",
                   "Throughput", "Advice"):
        assert needle in out.stdout, needle
    assert "Traceback" not in out.stdout + out.stderr


STRESS_RUNS = {
    "simple": ["stress/simple_stress.py", "3"],
    "burst": ["stress/burst_stress.py", "5", "--concurrency", "5"],
    "continuous": ["stress/continuous_stress.py", "1.5", "--rate", "2"],
    "sustained": ["-m", "stress.sustained_stress", "--depth", "2", "--seconds", "1.5",
                  "--check", "0.3", "--max-tasks", "6"],
    "distributed": ["stress/distributed_stress.py", "4"],
    "cli": [CLI, "stress", "3", "--filters", "blur:radius=1.5"],
}


@pytest.mark.parametrize("name", list(STRESS_RUNS))
def test_stress_counts_equal_what_the_api_recorded(live_fleet, tmp_path, name):
    live_fleet.wait_until_idle()
    before = stats(live_fleet)
    report_path = tmp_path / "report.json"
    out = live_fleet.tool(*STRESS_RUNS[name], "--timeout", "60", "--json", str(report_path))
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(report_path.read_text())
    live_fleet.wait_until_idle()
    after = stats(live_fleet)
    assert report["submitted"] >= 1 and report["accepted"] == report["submitted"]
    assert report["completed"] == report["submitted"] and report["unfinished"] == 0
    assert after["tasks_submitted"] - before["tasks_submitted"] == report["accepted"]
    assert after["tasks_completed"] - before["tasks_completed"] == report["completed"]
    assert after["tasks_failed"] - before["tasks_failed"] == report["failed"]["total"]
    assert report["e2e_latency_ms"]["count"] == report["completed"]
    assert report["e2e_latency_ms"]["p50"] <= report["e2e_latency_ms"]["max"]
    assert f"completed   {report['completed']}" in out.stdout
    if name == "distributed":      # every capability class and their mix got work
        assert len(report["by_queue"]) >= 3, report["by_queue"]


# README "Operator tools": every make target as written (short runs), against the live fleet.
MAKE_TARGETS = {
    "check": ["check"],
    "metrics": ["metrics"],
    "monitor": ["monitor", "ARGS=--once"],
    "stress": ["stress", "N=3"],
    "rq-info": ["rq-info"],
    "simple-stress": ["simple-stress", "N=2"],
    "burst-stress": ["burst-stress", "N=3"],
    "continuous-stress": ["continuous-stress", "SECONDS=1", "RATE=2"],
    "sustained-stress": ["sustained-stress", "DEPTH=2", "SECONDS=1"],
    "distributed-stress": ["distributed-stress", "N=3"],
    "storage-stress": ["storage-stress", "N=3", "ARGS=--size 320x200 --delete"],
}
MAKE_EXPECT = {"check": "Passed: 5  Failed: 0", "metrics": "Scaling recommendation:", "monitor": "ops-all",
               "rq-info": "ops-io", "stress": "completed   3", "simple-stress": "completed   2",
               "burst-stress": "completed   3", "continuous-stress": "completed   2",
               "sustained-stress": "== sustained_stress", "distributed-stress": "completed   3",
               "storage-stress": "3 tasks (0 failed, 0 submits refused for storage)"}


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
@pytest.mark.parametrize("target", list(MAKE_TARGETS))
def test_readme_make_targets_work_as_written(live_fleet, target):
    live_fleet.wait_until_idle()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXELFLEET_")}
    env.update(PIXELFLEET_URL=live_fleet.url, PIXELFLEET_TOKEN=live_fleet.token, REDIS_URL=live_fleet.redis_url,
               COLUMNS="120")
    env.pop("MAKEFLAGS", None)
    out = subprocess.run(["make", "--no-print-directory", *MAKE_TARGETS[target]], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout + out.stderr
    assert MAKE_EXPECT[target] in out.stdout, out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_sustained_stress_holds_its_depth(live_fleet, tmp_path):
    """--depth 4 used to read an empty queue, top it up, sleep, and never hold any depth."""
    live_fleet.wait_until_idle()
    report_path = tmp_path / "sustained.json"
    out = live_fleet.tool("stress/sustained_stress.py", "--depth", "4", "--seconds", "3", "--json", str(report_path))
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(report_path.read_text())
    in_flight = [s[1] for s in report["depth_samples"]]
    assert len(in_flight) >= 3 and sum(in_flight) / len(in_flight) >= 3.5, in_flight
    held = report["held_by_fleet"]
    # How much of the depth the fleet itself holds (vs. the clients' round trips) depends on
    # how fast tasks run; what must hold is that it is measured and adds up.
    assert held["total"] > 0 and abs(held["total"] - held["queued"] - held["running"]) < 0.02, held
    assert "held by the fleet" in out.stdout and "(target 4)" in out.stdout


def test_stress_report_counts_rejections_by_status(live_fleet, tmp_path):
    out = live_fleet.tool("stress/burst_stress.py", "2", "--filters", "blur:radius=80",
                          "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "p.png"))
    assert out.returncode == 1
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["rejected"] == {"total": 2, "by_status": {"400": 2},
                                  "by_code": {"invalid_steps": 2}}
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")


def test_submit_without_token_is_rejected_with_401_or_403(live_fleet):
    out = live_fleet.tool("stress/simple_stress.py", "1", "--token", "wrong-token")
    assert out.returncode == 1
    assert "rejected    1" in out.stdout and ("401" in out.stdout or "403" in out.stdout)


class TmuxMonitor:
    """`monitor` in a tmux pane of a private tmux server: what a person at a terminal sees."""

    def __init__(self, url: str, cols: int, rows: int) -> None:
        self.tmux = ["tmux", "-L", f"ops-test-{os.getpid()}"]     # own server: never another's
        cmd = shlex.join([sys.executable, CLI, "--url", url, "monitor", "--interval", "0.5"])
        subprocess.run([*self.tmux, "new-session", "-d", "-s", "mon", "-x", str(cols),
                        "-y", str(rows), "-c", str(ROOT), f"env -u COLUMNS -u LINES {cmd}"],
                       check=True)

    def screen(self) -> str:
        return subprocess.run([*self.tmux, "capture-pane", "-p", "-t", "mon"],
                              capture_output=True, text=True).stdout

    def wait_for(self, *needles: str, timeout: float = 20.0) -> str:
        deadline, screen = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(n in screen for n in needles):
                return screen
            time.sleep(0.3)
        raise AssertionError(f"{needles} not on screen after {timeout}s:\n{screen}")

    def alive(self) -> bool:
        return subprocess.run([*self.tmux, "has-session", "-t", "mon"],
                              capture_output=True).returncode == 0

    def quit(self) -> bool:
        """Press q; True when the program (and so the session) ended within 10 s."""
        subprocess.run([*self.tmux, "send-keys", "-t", "mon", "q"], check=True)
        deadline = time.monotonic() + 10
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        return not self.alive()

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed")


@needs_tmux
@pytest.mark.parametrize("size", [(80, 24), (140, 50)])
def test_monitor_under_tmux_quits_on_q(live_fleet, size):
    """As a person runs it: a real terminal of that size, full screen, q quits."""
    cols, rows = size
    mon = TmuxMonitor(live_fleet.url, cols, rows)
    try:
        screen = mon.wait_for("API ok", "ops-all", "ops-io", "idle")
        assert max(len(line) for line in screen.splitlines()) <= cols
        assert mon.quit(), "monitor did not quit on q"
    finally:
        mon.close()


@needs_tmux
def test_api_outage_is_shown_and_survived(live_fleet):
    """API stopped: the dashboard says so and keeps retrying, check exits 1; API back: recovers."""
    mon = TmuxMonitor(live_fleet.url, 100, 30)
    try:
        mon.wait_for("API ok", "ops-all")
        live_fleet.stop_api()
        screen = mon.wait_for("API DOWN", "connection refused")
        assert "Traceback" not in screen
        out = live_fleet.tool(CLI, "check")
        assert out.returncode == 1 and "✗ API reachable" in out.stdout, out.stdout
        live_fleet.start_api()
        live_fleet.wait_ready(len(live_fleet.workers))
        mon.wait_for("API ok", "ops-all")
        assert mon.quit(), "monitor did not quit on q after the outage"
    finally:
        mon.close()


def test_check_fails_with_exit_1_when_workers_are_stopped(live_fleet):
    """Must stay last: it stops the fleet's workers."""
    live_fleet.stop_workers()
    deadline = time.monotonic() + 15
    while live_fleet.get("/api/health/").json()["workers"]["live"] and time.monotonic() < deadline:
        time.sleep(0.2)
    out = live_fleet.tool(CLI, "check", "--task-timeout", "2")
    assert out.returncode == 1, out.stdout
    assert "✗ workers with capability io" in out.stdout
    assert "✗ end-to-end task" in out.stdout
    assert "✓ API reachable" in out.stdout
    assert "Failed: 0" not in out.stdout.splitlines()[-1]
