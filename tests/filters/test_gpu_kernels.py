"""The numba.cuda kernels (filters.gpu) against the numba CPU kernels (filters.cpu).

Runs in the CUDA simulator (tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1), where every
launch is interpreted Python: images stay small (<= 24 x 31) and each case launches as
few kernels as it can. Tolerances, as max absolute difference in uint8 levels:
- 0 where both backends do the same integer or table arithmetic (brightness LUT, block
  means, nearest resize, palette mapping, upscale) - k-means palettes are identical
  because both backends fit them with the same host code (filters.palettes);
- 1 where both sum float32 products in a different order (Gaussian, resampling, Sobel,
  luma, the contrast mean): a value within float error of .5 may round the other way.
Shapes cover RGB and RGBA, odd sizes and 1 x 1.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from filters import cpu, gpu
from filters.errors import FilterFailed
from tests.filters.images import make_image, maxdiff

ROOT = Path(__file__).resolve().parents[2]


def on_gpu(fn, image: np.ndarray, **params) -> np.ndarray:
    """Upload, run one GPU filter, download - the pipeline's pattern for one step."""
    return gpu.download(fn(gpu.upload(image), **params))


RGB = (19, 23, 3)
RGBA = (17, 21, 4)

POINT_CASES = [
    # (filter, params, shape, tolerance)
    ("brightness", {"factor": 1.3}, RGB, 0),      # same float64 table on both
    ("brightness", {"factor": 0.0}, RGBA, 0),
    ("contrast", {"factor": 1.6}, RGBA, 1),       # exact int sums vs float32 partial sums
    ("grayscale", {}, RGBA, 1),
    ("blur", {"radius": 1.5}, RGB, 1),
    ("blur", {"radius": 6.0}, (5, 7, 4), 1),      # half-width 18 > image: repeated reflection
    ("blur", {"radius": 0.5}, (1, 1, 3), 1),
    ("sharpen", {"amount": 2.0, "radius": 1.0}, RGBA, 1),
    ("edges", {"threshold": None}, RGBA, 1),
    ("edges", {"threshold": None}, (1, 1, 3), 1),
]


@pytest.mark.parametrize("name,params,shape,tol", POINT_CASES,
                         ids=[f"{c[0]}-{c[2][0]}x{c[2][1]}x{c[2][2]}-{i}"
                              for i, c in enumerate(POINT_CASES)])
def test_kernel_matches_cpu(name, params, shape, tol):
    img = make_image(shape, seed=len(name))
    want = getattr(cpu, name)(img, **params)
    got = on_gpu(getattr(gpu, name), img, **params)
    assert maxdiff(got, want) <= tol
    if shape[2] == 4 and name in ("brightness", "contrast", "grayscale", "edges"):
        assert np.array_equal(got[..., 3], img[..., 3])  # alpha untouched


def test_edges_threshold_is_binary_and_agrees_off_the_boundary():
    img = make_image(RGB, seed=3)
    threshold = 100
    got = on_gpu(gpu.edges, img, threshold=threshold)
    want = cpu.edges(img, threshold=threshold)
    assert set(np.unique(got[..., :3])) <= {0, 255}
    # A magnitude within float error of the threshold may land either side; nowhere else.
    magnitude = cpu.edges(img, threshold=None)[..., 0].astype(np.int64)
    differs = np.any(got != want, axis=2)
    assert np.all(np.abs(magnitude[differs] - threshold) <= 1)


def test_contrast_mean_is_the_exact_mean_luma():
    img = make_image(RGBA, seed=4)
    exact = float((img[..., :3].astype(np.float64) @ [0.299, 0.587, 0.114]).mean())
    from filters.gpu_point import mean_luma
    assert mean_luma(gpu.upload(img)) == pytest.approx(exact, abs=1e-9)


RESIZE_CASES = [
    ("nearest", 9, 13), ("nearest", 40, 29),
    ("bilinear", 9, 13), ("bilinear", 40, 29),
    ("area", 9, 13), ("area", 40, 29),
    ("lanczos", 9, 13), ("lanczos", 40, 29),
    ("auto", 30, 11),                              # grows one axis, shrinks the other
    ("area", 17, 7),                               # exact integer factors: block means
]


@pytest.mark.parametrize("interpolation,height,width", RESIZE_CASES)
def test_resize_matches_cpu(interpolation, height, width):
    img = make_image(RGBA, seed=5)
    params = {"width": width, "height": height, "interpolation": interpolation}
    got = on_gpu(gpu.resize, img, **params)
    assert got.shape == (height, width, 4)
    exact = interpolation == "nearest" or (17 % height == 0 and 21 % width == 0)
    tol = 0 if exact else 1
    assert maxdiff(got, cpu.resize(img, **params)) <= tol


def test_resize_keeps_aspect_and_handles_1x1():
    img = make_image(RGB, seed=6)
    got = on_gpu(gpu.resize, img, width=10)
    assert maxdiff(got, cpu.resize(img, width=10)) <= 1
    one = make_image((1, 1, 3))
    assert maxdiff(on_gpu(gpu.resize, one, scale=3.0), cpu.resize(one, scale=3.0)) <= 1
    assert maxdiff(on_gpu(gpu.resize, img, width=1, height=1, interpolation="area"),
                   cpu.resize(img, width=1, height=1, interpolation="area")) <= 1


def test_resize_refuses_like_the_cpu():
    img = gpu.upload(make_image((2, 2, 3)))
    with pytest.raises(FilterFailed, match="megapixels"):
        gpu.resize(img, width=16384, height=16384)
    with pytest.raises(FilterFailed, match="interpolation"):
        gpu.resize(img, width=3, interpolation="cubic")


PIXELATE_CASES = [
    ({"block_size": 4, "palette": "none"}, RGBA),
    ({"block_size": 5}, RGB),                                   # adaptive k-means, 16
    ({"block_size": 3, "palette_size": 4, "method": "median_cut", "dither": "floyd-steinberg",
      "upscale": False}, RGBA),
    ({"block_size": 2, "palette": "pico-8", "dither": "bayer", "outline": True}, RGB),
    ({"block_size": 3, "palette": "none", "outline": True}, RGBA),
    ({"block_size": 64, "palette": "gameboy"}, RGBA),           # one partial block
    ({"block_size": 1, "palette": "cga", "dither": "bayer"}, (1, 1, 3)),
    ({"block_size": 2, "palette_size": 6, "dither": "floyd-steinberg-adaptive"}, RGBA),
    ({"block_size": 1, "palette": "pico-8"}, RGB),               # OKLab per pixel
]


@pytest.mark.parametrize("params,shape", PIXELATE_CASES,
                         ids=["-".join(f"{v}" for v in p.values()) for p, _ in PIXELATE_CASES])
def test_pixelate_matches_cpu(params, shape):
    img = make_image(shape, seed=7)
    got = on_gpu(gpu.pixelate, img, **params)
    # Integer block means and identical host-fitted palettes: bit-exact.
    assert maxdiff(got, cpu.pixelate(img, **params)) == 0
    if shape[2] == 4 and params.get("palette") != "none":
        small = cpu.block_average(img, params["block_size"])
        want_alpha = cpu.upscale_nearest(small, params["block_size"], *shape[:2])[..., 3] \
            if params.get("upscale", True) else small[..., 3]
        assert np.array_equal(got[..., 3], want_alpha)  # alpha averaged, never quantised


def test_oklab_palette_kernel_matches_cpu_on_the_readme_red_disc():
    """The device kernel's OKLab conversion and search pick what the CPU picks: PICO-8's
    red for the README sample's disc colour (RGB distance picked brown), and the same
    colour for every pixel of a random image against a 64-colour palette with ties."""
    from filters import palettes
    from filters.gpu_pixelate import _map
    disc = np.full((3, 4, 3), (230, 60, 50), np.uint8)
    got = on_gpu(gpu.pixelate, disc, block_size=1, palette="pico-8")
    assert np.all(got == (255, 0, 77))
    rng = np.random.default_rng(21)
    pal = rng.integers(0, 256, (64, 3), dtype=np.uint8)
    pal[32:] = pal[:32]  # exact ties: lowest index on both
    img = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    for dither in ("none", "bayer"):
        dev = gpu.download(_map(gpu.upload(img), pal, dither))
        host = palettes.apply_palette(img, pal, dither)
        assert np.array_equal(dev, host), dither


def test_pixelate_block_stage_and_upscale_match_cpu_helpers():
    img = make_image(RGB, seed=8)
    from filters.gpu_pixelate import block_average
    small = gpu.download(block_average(gpu.upload(img), 4))
    assert np.array_equal(small, cpu.block_average(img, 4))
    got = on_gpu(gpu.pixelate, img, block_size=4, palette="none")
    assert np.array_equal(got, cpu.upscale_nearest(small, 4, RGB[0], RGB[1]))


def test_pipeline_gpu_equals_cpu():
    from filters import pipeline
    from filters.registry import validate_steps
    img = make_image((21, 27, 4), seed=9)
    steps = validate_steps([
        {"filter": "resize", "params": {"width": 18}},
        {"filter": "contrast", "params": {"factor": 1.4}},
        {"filter": "blur", "params": {"radius": 1.0}},
        {"filter": "pixelate", "params": {"block_size": 3, "palette_size": 8}},
    ])
    on_cpu = pipeline.run_pipeline(img, steps, backend="cpu")
    on_dev = pipeline.run_pipeline(img, steps, backend="gpu")
    assert on_cpu.backend == "cpu" and on_dev.backend == "gpu"
    assert [t.name for t in on_dev.timings] == [s.name for s in steps]
    # The steps' ±1 differences can move a block mean across a palette boundary; allow a
    # handful of blocks to differ, and the rest to be bit-exact.
    differs = np.any(on_dev.image != on_cpu.image, axis=2)
    assert on_dev.image.shape == on_cpu.image.shape
    assert differs.mean() <= 0.05
    # Without quantisation the ±1 of a step is at most amplified by the later steps:
    # blur ±1 -> sharpen (1 + amount = 2) -> grayscale -> brightness 1.2: within 3.
    steps = validate_steps([{"filter": "blur", "params": {"radius": 1.0}}, {"filter": "sharpen"},
                            {"filter": "grayscale"}, {"filter": "brightness"}])
    on_cpu = pipeline.run_pipeline(img, steps, backend="cpu")
    on_dev = pipeline.run_pipeline(img, steps, backend="gpu")
    assert maxdiff(on_dev.image, on_cpu.image) <= 3


def test_import_does_not_initialise_cuda():
    """Importing filters.gpu (without the simulator) must not touch the driver: a worker
    that imports it and then forks would hand its children a dead CUDA context."""
    code = ("from numba.cuda.cudadrv import driver as d\n"
            "calls = []\n"
            "original = d.Driver.ensure_initialized\n"
            "def spy(self):\n"
            "    calls.append(1)\n"
            "    return original(self)\n"
            "d.Driver.ensure_initialized = spy\n"
            "import filters.gpu\n"
            "assert not calls and d.driver.pid is None, 'CUDA initialised at import'\n"
            "print('ok')\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr[-2000:]


def _toolkit_with_nvvm() -> bool:
    import glob
    roots = [os.environ.get("CUDA_HOME", "")] + glob.glob("/usr/local/cuda*")
    return any(glob.glob(f"{r}/lib*/libnvvm.so*") or glob.glob(f"{r}/nvvm/lib*/libnvvm.so*")
               for r in roots if r)


@pytest.mark.skipif(not _toolkit_with_nvvm(), reason="no CUDA toolkit libnvvm on this machine")
def test_every_kernel_compiles_to_ptx_for_a_real_device():
    """The simulator never type-checks kernels; NVVM does (no GPU needed)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    done = subprocess.run([sys.executable, "-m", "filters.gpu_ptx_check", "--cc", "8.0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert done.stdout.count("ok ") == 14
    assert " 0 f64 ops" in done.stdout and all(
        " 0 f64 ops" in line for line in done.stdout.splitlines())  # float32 math only


def test_gpu_benchmark_runner_reports_synchronised_timings_in_the_simulator():
    """The benchmark's GPU runner end to end on a tiny image (timings are not checked:
    the simulator's speed means nothing); it refuses the simulator unless allowed."""
    from filters import benchmark_gpu
    from filters.benchmark import Case
    cases = [Case("blur", "blur", {"radius": 1.0}), Case("pixelate", "pixelate", {"block_size": 4})]
    from filters.gpu_launch import simulated
    if simulated():
        with pytest.raises(benchmark_gpu.GpuUnavailable, match="simulator"):
            benchmark_gpu.run((16, 12), 1, cases=cases)
    report = benchmark_gpu.run((16, 12), 1, allow_simulator=True, cases=cases)
    assert report["size"] == "16x12"
    assert (report["device"] == "CUDA simulator") == simulated()
    assert [r["case"] for r in report["rows"]] == ["blur", "pixelate"]
    for row in report["rows"]:
        assert row["device_ms"] > 0 and row["end_to_end_ms"] > 0 and row["first_call_ms"] > 0
    assert "end-to-end ms" in benchmark_gpu.format_table(report)


@pytest.mark.parametrize("name,params,match", [
    ("blur", {"radius": 80}, "blur.radius"),
    ("sharpen", {"amount": -1}, "sharpen.amount"),
    ("brightness", {"factor": float("nan")}, "brightness.factor"),
    ("edges", {"threshold": 300}, "edges.threshold"),
    ("pixelate", {"block_size": 0}, "pixelate.block_size"),
    ("pixelate", {"palette": "c64"}, "pixelate.palette"),
    ("pixelate", {"dither": "noise"}, "pixelate.dither"),
])
def test_bad_arguments_raise_filter_failed_before_any_launch(name, params, match):
    img = gpu.upload(make_image((4, 4, 3)))
    with pytest.raises(FilterFailed, match=match):
        getattr(gpu, name)(img, **params)
    with pytest.raises(FilterFailed, match="uint8 device image"):
        getattr(gpu, name)(gpu.upload(np.zeros((4, 4), np.uint8)))


def test_warm_up_launches_every_kernel_with_the_ptx_checked_types(monkeypatch):
    """warm_up launches every kernel, and every launch (warm-up and the RGBA / palette
    variants) passes exactly the argument types gpu_ptx_check compiles for a device - so
    a wrapper passing, say, a Python float (a float64 specialisation) fails here."""
    import numba
    from filters import gpu_blocks, gpu_conv, gpu_pixelate, gpu_point, gpu_ptx_check, gpu_resize
    declared = {kernel.py_func: sig for _, kernel, sig in gpu_ptx_check.kernel_signatures()}
    launched: dict[str, set] = {}

    class Recorder:
        def __init__(self, name, kernel):
            self.name, self.kernel = name, kernel

        def __getitem__(self, config):
            launch = self.kernel[config]

            def record(*args):
                launched.setdefault(self.name, set()).add(
                    (self.kernel.py_func, tuple(numba.typeof(a) for a in args)))
                return launch(*args)
            return record

    names = set()
    for module in (gpu_blocks, gpu_conv, gpu_pixelate, gpu_point, gpu_resize):
        for name in dir(module):
            if name.endswith("_kernel"):
                names.add(name)
                monkeypatch.setattr(module, name, Recorder(name, getattr(module, name)))
    assert gpu.warm_up() > 0
    assert set(launched) == names
    rgba = gpu.upload(make_image((6, 5, 4)))
    gpu.pixelate(rgba, block_size=2, palette_size=3, outline=True)
    gpu.pixelate(rgba, block_size=2, palette="none", outline=True)
    gpu.resize(rgba, width=8, interpolation="lanczos")
    gpu.edges(rgba, threshold=10)
    assert len(names) == len(declared)  # the PTX check misses no kernel
    for name, calls in launched.items():
        for py_func, types in calls:
            assert declared[py_func] == types, (name, types)
