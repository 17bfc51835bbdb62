"""run_pipeline: order, timings, progress, deadline, the image contract, backends."""
from __future__ import annotations

import time

import numpy as np
import pytest

from filters.errors import FilterFailed, ValidationError
from filters.pipeline import PipelineResult, run_pipeline
from filters.registry import validate_steps

cpu = pytest.importorskip("filters.cpu")


def make_image(h=12, w=17, c=3, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def test_steps_run_in_order_with_their_params():
    image = make_image()
    a = run_pipeline(image, [{"filter": "brightness", "params": {"factor": 1.7}}, "grayscale"], "cpu")
    b = run_pipeline(image, ["grayscale", {"filter": "brightness", "params": {"factor": 1.7}}], "cpu")
    assert np.array_equal(a.image, cpu.grayscale(cpu.brightness(image, factor=1.7)))
    assert np.array_equal(b.image, cpu.brightness(cpu.grayscale(image), factor=1.7))
    assert not np.array_equal(a.image, b.image)  # order matters, and is kept
    assert not np.array_equal(a.image, image)


def test_result_has_timings_backend_and_device():
    steps = validate_steps([{"filter": "resize", "params": {"width": 8}}, "blur", "grayscale"])
    result = run_pipeline(make_image(c=4), steps, backend="cpu")
    assert isinstance(result, PipelineResult)
    assert [t.name for t in result.timings] == ["resize", "blur", "grayscale"]
    assert all(t.ms >= 0 for t in result.timings) and result.total_ms >= 0
    assert result.backend == "cpu" and result.device.startswith("cpu (")
    assert result.image.shape == (6, 8, 4) and result.image.flags.c_contiguous


def test_auto_is_cpu_under_the_simulator():
    assert run_pipeline(make_image(), ["grayscale"]).backend == "cpu"


def test_progress_is_called_before_each_step():
    calls = []
    run_pipeline(make_image(), ["grayscale", "brightness", "contrast"], "cpu",
                 progress=lambda i, n, name: calls.append((i, n, name)))
    assert calls == [(1, 3, "grayscale"), (2, 3, "brightness"), (3, 3, "contrast")]


def test_deadline_already_passed_runs_nothing():
    calls = []
    with pytest.raises(TimeoutError, match=r"before step 1/2 \(grayscale\); finished: none"):
        run_pipeline(make_image(), ["grayscale", "blur"], "cpu",
                     progress=lambda *a: calls.append(a), deadline=time.monotonic() - 1)
    assert calls == []


def test_deadline_stops_between_steps():
    def slow_first_step(i, n, name):
        if i == 1:
            time.sleep(0.08)

    with pytest.raises(TimeoutError, match=r"before step 2/3 \(brightness\); finished: grayscale"):
        run_pipeline(make_image(), ["grayscale", "brightness", "contrast"], "cpu",
                     progress=slow_first_step, deadline=time.monotonic() + 0.04)


def test_alpha_is_kept_by_point_filters():
    image = make_image(c=4)
    out = run_pipeline(image, ["grayscale", "brightness", "contrast", "edges"], "cpu").image
    assert np.array_equal(out[:, :, 3], image[:, :, 3])


def test_image_contract():
    strided = make_image(12, 34)[:, ::2]          # a view: not C-contiguous
    assert not strided.flags.c_contiguous
    out = run_pipeline(strided, ["grayscale"], "cpu").image
    assert np.array_equal(out, cpu.grayscale(np.ascontiguousarray(strided)))
    for bad, words in ((make_image().astype(np.float32), "uint8"),
                       (make_image()[:, :, 0], "shape"),
                       (make_image(c=2), "shape"),
                       (np.zeros((0, 4, 3), np.uint8), "shape"),
                       ([[1, 2, 3]], "numpy array")):
        with pytest.raises(FilterFailed, match=words):
            run_pipeline(bad, ["grayscale"], "cpu")


def test_steps_are_validated_again():
    with pytest.raises(ValidationError, match="blur.radius must be between 0.1 and 50, got 80"):
        run_pipeline(make_image(), [{"filter": "blur", "params": {"radius": 80}}], "cpu")
    with pytest.raises(ValidationError, match="backend must be one of auto, cpu, gpu"):
        run_pipeline(make_image(), ["grayscale"], "tpu")


def test_resize_above_the_pixel_limit_is_refused(monkeypatch):
    monkeypatch.setenv("PIXELFLEET_MAX_MEGAPIXELS", "0.001")    # 1000 pixels
    with pytest.raises(FilterFailed, match="above the limit"):
        run_pipeline(make_image(), [{"filter": "resize", "params": {"scale": 16}}], "cpu")


def test_gpu_backend_runs_the_cuda_path_in_the_simulator():
    pytest.importorskip("filters.gpu")
    image = make_image(5, 6, 4)
    steps = [{"filter": "brightness", "params": {"factor": 1.5}}, "grayscale"]
    on_gpu = run_pipeline(image, steps, backend="gpu")
    assert on_gpu.backend == "gpu" and on_gpu.device == "CUDA simulator"
    assert [t.name for t in on_gpu.timings] == ["brightness", "grayscale"]
    on_cpu = run_pipeline(image, steps, backend="cpu")
    assert np.abs(on_gpu.image.astype(int) - on_cpu.image.astype(int)).max() <= 1


def test_sample_gives_every_filter_something_to_do():
    from filters.samples import draw_sample
    image = draw_sample(160, 90)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 1000   # colourful, not flat
    for step in ("blur", "sharpen", "edges", "pixelate", "contrast"):
        out = run_pipeline(image, [step], "cpu").image
        changed = np.any(out != image, axis=2).mean()
        assert changed > 0.2, f"{step} changed only {changed:.0%} of the sample"


def test_import_filters_chooses_the_omp_threading_layer():
    import subprocess
    import sys
    code = ("import os, filters, numba\n"
            "print(os.environ['NUMBA_THREADING_LAYER'], numba.config.THREADING_LAYER)")
    env = {k: v for k, v in __import__("os").environ.items() if k != "NUMBA_THREADING_LAYER"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    assert out.stdout.split() == ["omp", "omp"]
    env["NUMBA_THREADING_LAYER"] = "workqueue"    # the operator's choice wins
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    assert out.stdout.split() == ["workqueue", "workqueue"]


def test_small_images_run_on_one_numba_thread_and_the_count_is_restored(monkeypatch):
    """A parallel region costs more than a tiny image's work: small steps run serially."""
    import numba

    from filters import pipeline

    seen = []
    real = pipeline.FILTERS["brightness"].cpu

    def spy(image, **params):
        seen.append(numba.get_num_threads())
        return real(image, **params)

    spec = pipeline.FILTERS["brightness"]
    monkeypatch.setattr(type(spec), "cpu", property(lambda self: spy), raising=False)
    before = numba.get_num_threads()
    small = np.zeros((16, 16, 3), np.uint8)
    big = np.zeros((300, 300, 3), np.uint8)
    pipeline.run_pipeline(small, [{"filter": "brightness"}], backend="cpu")
    pipeline.run_pipeline(big, [{"filter": "brightness"}], backend="cpu")
    assert seen == [1, before]
    assert numba.get_num_threads() == before
