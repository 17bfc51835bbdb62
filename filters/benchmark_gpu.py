"""The GPU side of the filter benchmark: synchronised timings of the numba.cuda kernels.

    python -m filters.benchmark --backend gpu      (the table, OpenCV ratios included)
    python -m filters.benchmark_gpu [--json] [--repeat N] [--size WxH]   (GPU columns only)

For each case of filters.benchmark.CASES it reports three medians:
- device_ms: the step on an image already on the device, then cuda.synchronize() -
  what one step costs inside a pipeline (host-side set-up such as tap tables or the
  palette fit of pixelate included, transfers excluded);
- end_to_end_ms: upload + step + download (the download synchronises) - what a
  one-step pipeline costs;
- first_call_ms: the very first end-to-end call in this process (kernel compilation).
Kernel launches are asynchronous, so every timing here ends with a synchronisation;
without it a timer measures only the launch.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any, Callable

import numpy as np


class GpuUnavailable(RuntimeError):
    """No usable CUDA device (or only the simulator, which is never benchmarked)."""


def require_gpu(allow_simulator: bool = False) -> str:
    """The device's name, or GpuUnavailable saying why the GPU cannot be benchmarked."""
    from numba import config

    if config.ENABLE_CUDASIM:
        if allow_simulator:
            return "CUDA simulator"
        raise GpuUnavailable("NUMBA_ENABLE_CUDASIM=1: the simulator is not benchmarked")
    try:
        from filters.dispatch import gpu_available, gpu_device_name
    except ImportError:
        gpu_available = gpu_device_name = None
    if gpu_available is not None and not gpu_available():
        raise GpuUnavailable("no usable CUDA GPU (filters.dispatch.gpu_available() is False; "
                             "SKIP_CUDA_CHECK set or no driver/device): use --backend cpu")
    from numba import cuda

    if not cuda.is_available():  # this process may use CUDA: it never forks
        raise GpuUnavailable("numba.cuda finds no CUDA device here: use --backend cpu")
    name = gpu_device_name() if gpu_device_name is not None else None
    if not name:
        raw = cuda.get_current_device().name
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
    return name


def _kernel(filter_name: str) -> Callable[..., Any]:
    from filters import gpu

    return getattr(gpu, filter_name)


def end_to_end(filter_name: str, params: dict[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """img -> img through the device: upload, step, download (synchronised by the copy)."""
    from filters import gpu

    kernel = _kernel(filter_name)
    return lambda img: gpu.download(kernel(gpu.upload(img), **params))


def time_case(filter_name: str, params: dict[str, Any], img: np.ndarray,
              repeat: int) -> dict[str, float]:
    """first_call_ms, device_ms and end_to_end_ms medians for one filter on `img`."""
    from filters import gpu

    kernel = _kernel(filter_name)
    run = end_to_end(filter_name, params)
    t0 = time.perf_counter()
    run(img)
    first = (time.perf_counter() - t0) * 1e3
    on_device = gpu.upload(img)
    gpu.synchronize()
    device, e2e = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        kernel(on_device, **params)
        gpu.synchronize()
        device.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        run(img)
        e2e.append((time.perf_counter() - t0) * 1e3)
    return {"first_call_ms": round(first, 2), "device_ms": round(statistics.median(device), 3),
            "end_to_end_ms": round(statistics.median(e2e), 3)}


def run(size: tuple[int, int] = (3840, 2160), repeat: int = 5,
        allow_simulator: bool = False, cases=None) -> dict[str, Any]:
    """Time every benchmark case on the GPU; the report --json prints."""
    from filters import benchmark

    device = require_gpu(allow_simulator)
    width, height = size
    img = benchmark.make_image(width, height)
    megapixels = width * height / 1e6
    rows = []
    for case in cases or benchmark.CASES:
        timing = time_case(case.filter, case.params, img, repeat)
        rows.append({"case": case.label, "filter": case.filter, "params": case.params, **timing,
                     "device_mp_per_s": round(megapixels / timing["device_ms"] * 1e3, 1)})
    return {"backend": "gpu", "device": device, "size": f"{width}x{height}", "repeat": repeat,
            "rows": rows}


def format_table(report: dict[str, Any]) -> str:
    lines = [f"backend=gpu device={report['device']} image={report['size']} RGB "
             f"repeat={report['repeat']} (medians; every timing ends with a synchronise)",
             f"{'case':<30}{'device ms':>11}{'MP/s':>9}{'end-to-end ms':>15}{'first call ms':>15}"]
    for r in report["rows"]:
        lines.append(f"{r['case']:<30}{r['device_ms']:>11.2f}{r['device_mp_per_s']:>9.0f}"
                     f"{r['end_to_end_ms']:>15.2f}{r['first_call_ms']:>15.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from filters.benchmark import _size

    parser = argparse.ArgumentParser(prog="python -m filters.benchmark_gpu",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per case (median)")
    parser.add_argument("--size", type=_size, default=(3840, 2160), help="WxH of the test image")
    args = parser.parse_args(argv)
    try:
        report = run(args.size, max(1, args.repeat))
    except GpuUnavailable as exc:
        print(f"filters.benchmark_gpu: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
