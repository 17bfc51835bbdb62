"""Backend choice: the GPU probe never runs CUDA in-process; SKIP_CUDA_CHECK and the
simulator always mean "no GPU" for backend='auto'."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from filters import dispatch
from filters.errors import FilterFailed, ValidationError


@pytest.fixture(autouse=True)
def fresh_cache():
    dispatch._reset_cache()
    yield
    dispatch._reset_cache()


def test_skip_cuda_check_answers_without_probing(monkeypatch):
    monkeypatch.setenv("SKIP_CUDA_CHECK", "1")
    monkeypatch.delenv("NUMBA_ENABLE_CUDASIM", raising=False)
    assert dispatch.gpu_available() is False
    assert dispatch.gpu_device_name() is None
    assert "SKIP_CUDA_CHECK" in dispatch.gpu_status().reason
    assert dispatch._cached is None                 # no child process was asked
    assert dispatch.resolve_backend("auto") == "cpu"
    with pytest.raises(FilterFailed, match="backend 'gpu' requested but no CUDA GPU.*SKIP_CUDA_CHECK"):
        dispatch.resolve_backend("gpu")


def test_simulator_is_never_a_gpu(monkeypatch):
    monkeypatch.delenv("SKIP_CUDA_CHECK", raising=False)
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    assert dispatch.gpu_available() is False
    assert "simulator" in dispatch.gpu_status().reason
    assert dispatch._cached is None
    assert dispatch.resolve_backend("auto") == "cpu"
    assert dispatch.resolve_backend("gpu") == "gpu"  # explicit: the CUDA path, simulated
    assert dispatch.resolve_backend("cpu") == "cpu"


def test_unknown_backend_is_a_validation_error():
    with pytest.raises(ValidationError, match="backend must be one of auto, cpu, gpu, got 'cuda'"):
        dispatch.resolve_backend("cuda")


def test_probe_runs_in_a_child_once_and_never_loads_cuda_here():
    """In a fresh interpreter without the simulator: the answer is cached, and neither
    numba.cuda nor the CUDA driver was loaded into that process."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_ENABLE_CUDASIM", "SKIP_CUDA_CHECK")}
    code = (
        "import json, sys, time\n"
        "from filters import dispatch as d\n"
        "first = d.gpu_status()\n"
        "t = time.perf_counter(); second = d.gpu_status(); again_s = time.perf_counter() - t\n"
        "print(json.dumps({'available': first.available, 'name': first.name,\n"
        "  'reason': first.reason, 'same': first is second, 'again_s': again_s,\n"
        "  'cuda_loaded': any(m.startswith('numba.cuda') for m in sys.modules)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120, check=True)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["cuda_loaded"] is False
    assert answer["same"] is True and answer["again_s"] < 0.01
    assert isinstance(answer["available"], bool)
    assert (answer["name"] is not None) == answer["available"]
    if not answer["available"]:
        assert answer["reason"]
