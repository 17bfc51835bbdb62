"""`python -m bench.e2e --smoke`: the end-to-end benchmark itself runs, start to finish.

It starts the fleet as `make run` does (one worker here), tiny photo-like JPEGs go
through the public HTTP API both ways (one call with `?wait`, and polling), and thumbor
beside it when `make bench-e2e` has installed it. Speed is not judged here (benchmarks
are measured, not timed tests); that every image came back is.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import photos, servers

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(450)
def test_smoke_run_measures_both_ways_of_asking(tmp_path):
    out = tmp_path / "report.json"
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("REDIS_URL", "NUMBA_ENABLE_CUDASIM") and not k.startswith("PIXELFLEET_")}
    done = subprocess.run([sys.executable, "-m", "bench.e2e", "--smoke", "--json", str(out), "--work", str(tmp_path)],
                          cwd=ROOT, env={**env, "SKIP_CUDA_CHECK": "1"}, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    report = json.loads(out.read_text())
    assert set(report["results"]) == set(photos.SMOKE_SIZES)
    for entry in report["results"].values():
        for system in ("pixelfleet", "pixelfleet_poll_10ms") + (("thumbor",) if servers.thumbor_installed() else ()):
            assert entry[system]["images"] > 0 and entry[system]["errors"] == 0, (system, entry)
            costs = entry[system]["cpu_ms_per_image"]   # where the time went, by kind of process
            assert costs["server"] > 0 and costs["client"] > 0, (system, costs)
            if system.startswith("pixelfleet"):
                assert {"api", "worker", "redis"} <= set(costs), costs
        assert entry["ratio_poll_wait"] is not None
    assert "| input | system | images/s |" in done.stdout and "CPU ms per image" in done.stdout
    # The fleet and thumbor were stopped: their logs end, no process of theirs is left.
    assert "pixelfleet.log" in {p.name for p in tmp_path.iterdir()}
