"""Filter benchmark: numba kernels against OpenCV's nearest equivalent, in the same run.

    python -m filters.benchmark [--json] [--backend cpu|gpu] [--repeat N] [--size WxH]

Times every case of CASES on one deterministic RGB image (3840x2160 by default) with the
chosen backend AND with OpenCV at the same thread count, and prints median ms, MP/s and the
ratio backend/OpenCV (below 1.0: numba is faster). It also measures, each in a fresh
subprocess, the first-call compile time with an empty numba cache and the start time with
the cache warm. Ratios within one run are what to compare: the absolute times move with
the machine's load.

Backends are runners (`RUNNERS`): "cpu" calls filters.cpu directly; "gpu" runs
filters.gpu end to end (upload, kernel, download; see filters.benchmark_gpu for device-only
timings) and refuses clearly when no CUDA device is usable.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import cv2
import numba
import numpy as np

from filters.geometry import resize_target

Image = np.ndarray
Runner = Callable[["Case"], Callable[[Image], Image]]


@dataclass(frozen=True)
class Case:
    """One benchmark row: a filter with parameters and OpenCV's nearest equivalent."""

    label: str
    filter: str
    params: dict[str, Any] = field(default_factory=dict)
    reference: Callable[[Image], Image] | None = None


def _gaussian_cv(img: Image, sigma: float) -> Image:
    k = 2 * int(np.ceil(3 * sigma)) + 1
    return cv2.GaussianBlur(img, (k, k), sigma, borderType=cv2.BORDER_REFLECT_101)


def _brightness_cv(img: Image, factor: float = 1.2) -> Image:
    table = np.clip(np.floor(np.arange(256) * factor + 0.5), 0, 255).astype(np.uint8)
    return cv2.LUT(img, table)


def _contrast_cv(img: Image, factor: float = 1.2) -> Image:
    m = cv2.mean(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))[0]
    table = np.clip(np.floor((np.arange(256) - m) * factor + m + 0.5), 0, 255).astype(np.uint8)
    return cv2.LUT(img, table)


def _grayscale_cv(img: Image) -> Image:
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)


def _sharpen_cv(img: Image, amount: float = 1.0, radius: float = 1.0) -> Image:
    return cv2.addWeighted(img, 1.0 + amount, _gaussian_cv(img, radius), -amount, 0)


def _edges_cv(img: Image) -> Image:
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    return cv2.cvtColor(cv2.convertScaleAbs(cv2.magnitude(gx, gy)), cv2.COLOR_GRAY2RGB)


def _pixelate_cv(img: Image, block: int = 8, colours: int = 0) -> Image:
    h, w = img.shape[:2]
    small = cv2.resize(img, (-(-w // block), -(-h // block)), interpolation=cv2.INTER_AREA)
    if colours:
        cv2.setRNGSeed(0)
        pts = small.reshape(-1, 3).astype(np.float32)
        criteria = (cv2.TERM_CRITERIA_MAX_ITER + cv2.TERM_CRITERIA_EPS, 8, 0.5)
        _, labels, centres = cv2.kmeans(pts, colours, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
        small = np.clip(centres + 0.5, 0, 255).astype(np.uint8)[labels.ravel()].reshape(small.shape)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def _resize_cv(img: Image, scale: float, flag: int) -> Image:
    th, tw = resize_target(img.shape[0], img.shape[1], scale=scale)
    return cv2.resize(img, (tw, th), interpolation=flag)


CASES: tuple[Case, ...] = (
    Case("resize area 1/2", "resize", {"scale": 0.5},
         lambda i: _resize_cv(i, 0.5, cv2.INTER_AREA)),
    Case("resize bilinear 2/3", "resize", {"scale": 2 / 3, "interpolation": "bilinear"},
         lambda i: _resize_cv(i, 2 / 3, cv2.INTER_LINEAR)),
    Case("blur r=2", "blur", {"radius": 2.0}, lambda i: _gaussian_cv(i, 2.0)),
    Case("brightness 1.2", "brightness", {"factor": 1.2}, _brightness_cv),
    Case("contrast 1.2", "contrast", {"factor": 1.2}, _contrast_cv),
    Case("grayscale", "grayscale", {}, _grayscale_cv),
    Case("sharpen a=1 r=1", "sharpen", {"amount": 1.0, "radius": 1.0}, _sharpen_cv),
    Case("edges", "edges", {}, _edges_cv),
    Case("pixelate b=8 none", "pixelate", {"block_size": 8, "palette": "none"}, _pixelate_cv),
    Case("pixelate b=8 kmeans16", "pixelate", {"block_size": 8, "palette": "adaptive",
         "palette_size": 16}, lambda i: _pixelate_cv(i, 8, 16)),
    Case("pixelate gameboy fs+outline", "pixelate", {"block_size": 8, "palette": "gameboy",
         "dither": "floyd-steinberg", "outline": True}),
)


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here (e.g. no CUDA device)."""


def cpu_runner(case: Case) -> Callable[[Image], Image]:
    from filters import cpu

    kernel = getattr(cpu, case.filter)
    return lambda img: kernel(img, **case.params)


def gpu_runner(case: Case) -> Callable[[Image], Image]:
    """End to end on the GPU (upload, kernel, download) via filters.benchmark_gpu.

    Refuses with BackendUnavailable when no real CUDA device is usable (the simulator is
    never benchmarked).
    """
    try:
        from filters.benchmark_gpu import GpuUnavailable, end_to_end, require_gpu
    except ImportError as exc:
        raise BackendUnavailable(f"the GPU benchmark is not installed here ({exc})") from None
    try:
        require_gpu()
    except GpuUnavailable as exc:
        raise BackendUnavailable(f"--backend gpu is not available here: {exc}") from None
    return end_to_end(case.filter, case.params)


RUNNERS: dict[str, Runner] = {"cpu": cpu_runner, "gpu": gpu_runner}


def make_image(width: int, height: int, channels: int = 3) -> Image:
    """Deterministic test card: smooth colour gradients, hard-edged shapes and mild noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 255 * x / max(1, width - 1)
    g = 255 * y / max(1, height - 1)
    b = 127.5 + 127.5 * np.sin(x / 37.0) * np.cos(y / 23.0)
    img = np.stack([r, g, b], axis=2)
    squares = ((x // 97 + y // 61) % 2 == 0)
    img[squares] = 255 - img[squares]
    noise = np.random.default_rng(1234).integers(-12, 13, img.shape[:2] + (1,))
    out = np.clip(img + noise, 0, 255).astype(np.uint8)
    if channels == 4:
        out = np.concatenate([out, np.full(out.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return np.ascontiguousarray(out)


def time_ms(fn: Callable[[Image], Image], img: Image, repeat: int) -> tuple[float, float]:
    """(median, best) wall time of `repeat` calls after one warm-up call (compilation).

    The best is reported too: on a shared machine a parallel kernel waits whenever one of
    its threads is preempted, which moves the median far more than the best.
    """
    fn(img)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(img)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times), min(times)


_STARTUP_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from filters import cpu
imported = time.perf_counter() - t0
img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
for name, params in json.loads(sys.argv[1]):
    getattr(cpu, name)(img, **params)
print(json.dumps({"seconds": time.perf_counter() - t0, "import_seconds": imported}))
"""


def startup_seconds(cold: bool) -> float | None:
    """Import of filters.cpu + first call of every case on a small image, in a fresh process
    (numpy and numba imports included; OpenCV is not imported there).

    cold=True points NUMBA_CACHE_DIR at an empty directory (everything compiles);
    cold=False uses the normal cache, which this run's own calls have just filled.
    """
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="numba-cold-") as empty:
        if cold:
            env["NUMBA_CACHE_DIR"] = empty
        specs = json.dumps([[case.filter, case.params] for case in CASES])
        proc = subprocess.run([sys.executable, "-c", _STARTUP_SCRIPT, specs], env=env,
                              capture_output=True, text=True, timeout=600,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return None
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])


def run(backend: str = "cpu", size: tuple[int, int] = (3840, 2160), repeat: int = 5,
        startup: bool = True, cases: tuple[Case, ...] = CASES,
        threads: int | None = None) -> dict[str, Any]:
    """Time every case; returns the machine-readable report (what --json prints)."""
    if backend not in RUNNERS:
        raise BackendUnavailable(f"unknown backend {backend!r}; choose {', '.join(RUNNERS)}")
    if threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    threads = numba.get_num_threads()
    cv2.setNumThreads(threads)
    runners = [RUNNERS[backend](case) for case in cases]  # refuses before any work
    width, height = size
    img = make_image(width, height)
    megapixels = width * height / 1e6
    rows = []
    for case, runner in zip(cases, runners):
        kernel_ms, kernel_best = time_ms(runner, img, repeat)
        ref_ms, ref_best = time_ms(case.reference, img, repeat) if case.reference else (None, None)
        rows.append({
            "case": case.label, "filter": case.filter, "params": case.params,
            "numba_ms": round(kernel_ms, 3), "mp_per_s": round(megapixels / kernel_ms * 1e3, 1),
            "opencv_ms": round(ref_ms, 3) if ref_ms else None,
            "ratio": round(kernel_ms / ref_ms, 2) if ref_ms else None,
            "numba_best_ms": round(kernel_best, 3),
            "opencv_best_ms": round(ref_best, 3) if ref_best else None,
            "best_ratio": round(kernel_best / ref_best, 2) if ref_best else None,
        })
    report: dict[str, Any] = {
        "backend": backend, "size": f"{width}x{height}", "repeat": repeat, "threads": threads,
        "threading_layer": numba.threading_layer(), "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "numba": numba.__version__, "opencv": cv2.__version__, "rows": rows,
    }
    if startup and backend == "cpu":
        report["compile_cold_s"] = startup_seconds(cold=True)
        report["cached_start_s"] = startup_seconds(cold=False)
    return report


def format_table(report: dict[str, Any]) -> str:
    """The human-readable table."""
    lines = [
        f"backend={report['backend']} image={report['size']} RGB repeat={report['repeat']} "
        f"threads={report['threads']} ({report['threading_layer']}) numba {report['numba']} "
        f"opencv {report['opencv']}",
        "medians of the timed calls; 'best' columns: fastest call (less sensitive to load)",
        f"{'case':<29}{'numba ms':>9}{'MP/s':>8}{'opencv ms':>10}{'ratio':>7}"
        f"{'best numba':>11}{'best cv':>8}{'ratio':>7}",
    ]

    def num(value: float | None, width: int, digits: int) -> str:
        return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"

    for row in report["rows"]:
        lines.append(
            f"{row['case']:<29}{num(row['numba_ms'], 9, 1)}{num(row['mp_per_s'], 8, 0)}"
            f"{num(row['opencv_ms'], 10, 1)}{num(row['ratio'], 7, 2)}"
            f"{num(row['numba_best_ms'], 11, 1)}{num(row['opencv_best_ms'], 8, 1)}"
            f"{num(row['best_ratio'], 7, 2)}")
    if "compile_cold_s" in report:
        cold, warm = report["compile_cold_s"], report["cached_start_s"]
        lines.append(f"first call, empty cache (compile, all cases): "
                     f"{cold:.2f} s" if cold is not None else "first call, empty cache: failed")
        lines.append(f"fresh process, warm cache (import + first calls): "
                     f"{warm:.2f} s" if warm is not None else "fresh process, warm cache: failed")
    return "\n".join(lines)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 3840x2160, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return w, h


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m filters.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--backend", choices=sorted(RUNNERS), default="cpu")
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per case (median)")
    parser.add_argument("--size", type=_size, default=(3840, 2160), help="WxH of the test image")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for numba AND OpenCV (default: numba's default, all cores)")
    parser.add_argument("--no-startup", action="store_true", help="skip the compile/start subprocesses")
    args = parser.parse_args(argv)
    try:
        report = run(args.backend, args.size, max(1, args.repeat), not args.no_startup,
                     threads=args.threads)
    except BackendUnavailable as exc:
        print(f"filters.benchmark: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
