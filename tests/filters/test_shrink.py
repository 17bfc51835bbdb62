"""Shrink-on-load: which decode path is picked, and that its output stays faithful.

The reference is always the full-decode path (decode_image + run_pipeline with the
original steps). Bounds (stated in docs/filters.md): resize PSNR >= 40 dB; pixelate with
palette none PSNR >= 45 dB and max error <= 8; a fixed palette >= 98 % identical pixels;
an adaptive palette within 1 dB of the full path's own fit to the block means.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from filters import io as image_io
from filters import photos, shrink
from filters.pipeline import decode_for, run_pipeline
from filters.registry import validate_steps

RESIZE_PSNR = 40.0
PIXELATE_PSNR = 45.0
PIXELATE_MAX_ERROR = 8


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def both_paths(data: bytes, raw_steps) -> tuple[np.ndarray, np.ndarray, image_io.Decoded]:
    """(full-decode output, shrink-on-load output, how it was decoded)."""
    steps = validate_steps(raw_steps)
    reference = run_pipeline(image_io.decode_image(data), steps, "cpu").image
    decoded, applied = decode_for(data, steps)
    out = run_pipeline(decoded.image, applied.steps, "cpu", upscale=applied.upscale).image
    assert out.shape == reference.shape
    return reference, out, decoded


@pytest.fixture(scope="module")
def photo_2k() -> bytes:
    return photos.named_photo("2k")


@pytest.fixture(scope="module")
def photo_24mp() -> bytes:
    return photos.named_photo("24mp")


# --- Planning ----------------------------------------------------------------------------
def _plan(raw_steps, height=4000, width=6000):
    return shrink.plan_shrink(validate_steps(raw_steps), height, width)


def test_resize_down_with_a_low_pass_interpolation_is_planned():
    for interpolation in ("auto", "area", "lanczos"):
        plan = _plan([{"filter": "resize", "params": {"width": 512, "interpolation": interpolation}}])
        assert plan is not None and plan.index == 0
        # 6000/k >= 1.25*512 and 4000/k >= 1.25*341 -> k <= 9
        assert plan.max_factor == 9 and plan.factor_from((8, 4, 2)) == 8


@pytest.mark.parametrize("raw", [
    [{"filter": "resize", "params": {"width": 512, "interpolation": "nearest"}}],
    [{"filter": "resize", "params": {"width": 512, "interpolation": "bilinear"}}],
    [{"filter": "resize", "params": {"width": 7000}}],                      # enlarges
    [{"filter": "resize", "params": {"width": 5000}}],                      # less than 2x
    [{"filter": "blur"}, {"filter": "resize", "params": {"width": 64}}],    # blur first
    [{"filter": "brightness", "params": {"factor": 1.5}}, {"filter": "resize", "params": {"width": 64}}],
    [{"filter": "pixelate", "params": {"block_size": 1}}],
    ["edges"],
])
def test_steps_that_need_every_pixel_get_no_plan(raw):
    assert _plan(raw) is None


def test_small_images_are_never_shrunk():
    assert _plan([{"filter": "resize", "params": {"width": 16}}], 800, 1200) is None


def test_commuting_point_filters_before_the_resize_keep_the_plan():
    plan = _plan(["grayscale", {"filter": "contrast", "params": {"factor": 0.8}},
                  {"filter": "brightness", "params": {"factor": 1.0}},
                  {"filter": "resize", "params": {"height": 100}}, "sharpen"])
    assert plan is not None and plan.index == 3 and plan.factor_from((8, 4, 2)) == 8


def test_pixelate_factors_divide_the_block():
    plan = _plan([{"filter": "pixelate", "params": {"block_size": 12}}])
    assert plan.factor_from((8, 4, 2)) == 4
    assert plan.factor_from(range(256, 1, -1)) == 12
    assert _plan([{"filter": "pixelate", "params": {"block_size": 9}}]).factor_from((8, 4, 2)) == 1


def test_apply_pins_the_full_size_target():
    steps = validate_steps([{"filter": "resize", "params": {"scale": 0.1}}, "grayscale"])
    plan = shrink.plan_shrink(steps, 4000, 6000)
    applied = plan.apply(steps, 4, 4000, 6000)
    assert applied.steps[0].params == {"width": 600, "height": 400, "scale": None, "interpolation": "auto"}
    assert applied.steps[1] == steps[1] and applied.upscale is None


def test_apply_scales_pixelate_blocks_back():
    steps = validate_steps([{"filter": "pixelate", "params": {"block_size": 16}}])
    applied = shrink.plan_shrink(steps, 4000, 6000).apply(steps, 8, 4000, 6000)
    assert applied.steps[0].params["block_size"] == 2 and applied.steps[0].params["upscale"] is False
    assert applied.upscale == shrink.Upscale(0, 16, 4000, 6000)


# --- Fidelity on photo-like JPEGs ---------------------------------------------------------
@pytest.mark.parametrize("raw, label", [
    ([{"filter": "resize", "params": {"width": 300}}], "dct:1/4"),   # 510 >= 1.25 * 300
    ([{"filter": "resize", "params": {"height": 40}}], "dct:1/4"),     # 1356 % 8 != 0
    ([{"filter": "resize", "params": {"scale": 0.1, "interpolation": "lanczos"}}], "dct:1/4"),
    (["grayscale", {"filter": "resize", "params": {"width": 200, "interpolation": "area"}}], "dct:1/4"),
    ([{"filter": "resize", "params": {"width": 512}}], "dct:1/2"),   # 510 < 512 <= 1020
    ([{"filter": "resize", "params": {"width": 900}}], "full"),      # 1020 < 1.25 * 900
])
def test_resize_2k_photo_stays_faithful(photo_2k, raw, label):
    reference, out, decoded = both_paths(photo_2k, raw)
    assert decoded.label == label
    assert psnr(out, reference) >= RESIZE_PSNR


def test_thumbnail_of_24mp_photo_decodes_at_an_eighth(photo_24mp):
    before = image_io.DECODE_COUNTS["dct:1/8"]
    reference, out, decoded = both_paths(photo_24mp, [{"filter": "resize", "params": {"width": 512}}])
    assert decoded.describe()["decoded"] == "750x500" and decoded.describe()["source"] == "6000x4000"
    assert image_io.DECODE_COUNTS["dct:1/8"] == before + 1
    assert out.shape == (341, 512, 3) and psnr(out, reference) >= RESIZE_PSNR


def test_pixelate_with_upscale_keeps_full_size(photo_2k):
    reference, out, decoded = both_paths(
        photo_2k, [{"filter": "pixelate", "params": {"block_size": 16, "palette": "none"}}])
    assert decoded.label == "dct:1/8" and out.shape == (1356, 2040, 3)
    assert psnr(out, reference) >= PIXELATE_PSNR
    assert int(np.abs(out.astype(int) - reference).max()) <= PIXELATE_MAX_ERROR


@pytest.mark.slow
def test_pixelate_24mp_photo_with_upscale_keeps_full_size(photo_24mp):
    reference, out, decoded = both_paths(
        photo_24mp, [{"filter": "pixelate", "params": {"block_size": 16, "palette": "none"}}])
    assert decoded.label == "dct:1/8" and out.shape == (4000, 6000, 3)
    assert psnr(out, reference) >= PIXELATE_PSNR
    assert int(np.abs(out.astype(int) - reference).max()) <= PIXELATE_MAX_ERROR


def test_pixelate_without_upscale_and_fixed_palette(photo_2k):
    reference, out, decoded = both_paths(
        photo_2k, [{"filter": "pixelate", "params": {"block_size": 12, "palette": "pico-8", "upscale": False}}])
    assert decoded.label == "dct:1/4" and out.shape == (113, 170, 3)
    assert (out == reference).all(axis=2).mean() >= 0.98


def test_adaptive_palette_fits_as_well_as_the_full_path(photo_2k):
    raw = [{"filter": "pixelate", "params": {"block_size": 8}}]
    means = run_pipeline(image_io.decode_image(photo_2k),
                         validate_steps([{"filter": "pixelate", "params": {"block_size": 8, "palette": "none"}}]),
                         "cpu").image
    reference, out, decoded = both_paths(photo_2k, raw)
    assert decoded.label == "dct:1/8"
    assert psnr(out, means) >= psnr(reference, means) - 1.0


# --- Formats, modes and orientation ---------------------------------------------------------
def _save(array: np.ndarray, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, fmt, **options)
    return out.getvalue()


@pytest.fixture(scope="module")
def photo_2k_array(photo_2k) -> np.ndarray:
    return image_io.decode_image(photo_2k)


def test_png_is_box_reduced(photo_2k_array):
    reference, out, decoded = both_paths(_save(photo_2k_array, "PNG", compress_level=1),
                                         [{"filter": "resize", "params": {"width": 200}}])
    assert decoded.label == "reduce:1/6"      # the largest integer dividing 2040 and 1356 with 340 >= 1.25 * 200
    assert psnr(out, reference) >= RESIZE_PSNR


def test_rgba_is_decoded_whole(photo_2k_array):
    rgba = np.dstack([photo_2k_array, np.full(photo_2k_array.shape[:2], 200, np.uint8)])
    reference, out, decoded = both_paths(_save(rgba, "PNG", compress_level=1),
                                         [{"filter": "resize", "params": {"width": 200}}])
    assert decoded.label == "full" and np.array_equal(out, reference)


def test_cmyk_jpeg_is_converted_before_it_is_reduced(photo_2k_array):
    out = io.BytesIO()
    Image.fromarray(photo_2k_array).convert("CMYK").save(out, "JPEG", quality=90)
    cmyk = out.getvalue()
    reference, out, decoded = both_paths(cmyk, [{"filter": "resize", "params": {"width": 200}}])
    assert decoded.label == "reduce:1/6"
    assert psnr(out, reference) >= RESIZE_PSNR


def test_exif_orientation_is_applied_to_the_scaled_decode(photo_2k_array):
    exif = Image.Exif()
    exif[0x0112] = 6
    data = _save(photo_2k_array, "JPEG", quality=90, exif=exif.tobytes())
    reference, out, decoded = both_paths(data, [{"filter": "resize", "params": {"width": 100}}])
    assert decoded.label == "dct:1/4" and decoded.describe()["source"] == "1356x2040"
    assert out.shape == (150, 100, 3) and psnr(out, reference) >= RESIZE_PSNR


def test_corpus_images_are_small_and_decoded_whole(shared_images: Path):
    """Every valid corpus file is under a megapixel: the shrink path must equal the full one."""
    for path in sorted((shared_images / "valid").iterdir()):
        data = path.read_bytes()
        reference, out, decoded = both_paths(data, [{"filter": "resize", "params": {"scale": 0.25}}])
        assert decoded.label == "full", path.name
        assert np.array_equal(out, reference), path.name
