"""The numba CPU kernels against tests/naive.py, OpenCV and Pillow on small images.

Shapes include 1x1, 1xN, Nx1, odd sizes and RGBA. Each comparison states its tolerance
(max absolute difference in uint8 levels): 1 where the kernel sums in float32 and the
reference in float64 (a value near .5 may round the other way), 0 where both are exact.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from filters import cpu, cpu_point
from filters.errors import FilterFailed
from filters.geometry import resize_target
from tests import naive
from tests.filters.images import make_image, maxdiff

SHAPES = [(1, 1, 3), (1, 9, 3), (9, 1, 4), (7, 13, 3), (16, 24, 4), (31, 17, 3)]


def smooth_image(shape: tuple[int, int, int]) -> np.ndarray:
    """A blurred, contrast-stretched image: resamplers that ring agree on it."""
    img = cv2.GaussianBlur(make_image(shape), (0, 0), 2.0)
    return np.clip((img.astype(np.float64) - img.mean()) * 3 + 128, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("radius", [0.3, 2.0, 6.5])
def test_blur_matches_naive(shape, radius):
    img = make_image(shape)
    assert maxdiff(cpu.blur(img, radius=radius), naive.blur(img, radius)) <= 1  # float32 sums


@pytest.mark.parametrize("radius", [0.8, 2.0, 5.0])
def test_blur_matches_opencv(radius):
    img = make_image((23, 37, 3))
    k = 2 * int(np.ceil(3 * radius)) + 1
    ref = cv2.GaussianBlur(img, (k, k), radius, borderType=cv2.BORDER_REFLECT_101)
    assert maxdiff(cpu.blur(img, radius=radius), ref) <= 1  # OpenCV: fixed-point taps


@pytest.mark.parametrize("shape", SHAPES)
def test_sharpen_matches_naive(shape):
    img = make_image(shape, seed=1)
    for amount, radius in ((1.0, 1.0), (2.5, 0.5), (0.0, 3.0)):
        out = cpu.sharpen(img, amount=amount, radius=radius)
        assert maxdiff(out, naive.sharpen(img, amount, radius)) <= 1  # float32 vs float64
    assert np.array_equal(cpu.sharpen(img, amount=0.0, radius=2.0), img)  # amount 0: identity


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("threshold", [None, 0, 60, 255])
def test_edges_matches_naive(shape, threshold):
    img = make_image(shape, seed=2)
    out = cpu.edges(img, threshold=threshold)
    ref = naive.edges(img, threshold)
    if threshold is None:
        assert maxdiff(out, ref) <= 1  # float32 luma
    else:
        # Binary output: a magnitude within float32 noise of the threshold may flip.
        assert np.mean(out != ref) <= 0.02
    if shape[2] == 4:
        assert np.array_equal(out[..., 3], img[..., 3])


def test_edges_matches_opencv_sobel():
    img = make_image((19, 29, 3), seed=3)
    lum = naive.luma(img).astype(np.float32)
    gx = cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    gy = cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT_101)
    ref = naive.round_clip(np.minimum(cv2.magnitude(gx, gy), 255))
    assert maxdiff(cpu.edges(img)[..., 0], ref) <= 1  # float32 rounding only


@pytest.mark.parametrize("shape", SHAPES)
def test_point_ops_match_naive(shape):
    img = make_image(shape, seed=4)
    for factor in (0.0, 0.5, 1.2, 10.0):
        assert maxdiff(cpu.brightness(img, factor=factor), naive.brightness(img, factor)) == 0
        # contrast: mean luma in float32 partial sums, then an exact float64 table.
        assert maxdiff(cpu.contrast(img, factor=factor), naive.contrast(img, factor)) <= 1
    assert maxdiff(cpu.grayscale(img), naive.grayscale(img)) <= 1  # float32 luma


def test_point_ops_match_pillow():
    from PIL import ImageEnhance

    img = make_image((21, 33, 3), seed=5)
    pil = Image.fromarray(img)
    gray = np.asarray(pil.convert("L"))
    assert maxdiff(cpu.grayscale(img)[..., 0], gray) <= 1  # Pillow: 16-bit fixed point
    ref = np.asarray(ImageEnhance.Brightness(pil).enhance(1.3))
    assert maxdiff(cpu.brightness(img, factor=1.3), ref) <= 1  # Pillow truncates
    ref = np.asarray(ImageEnhance.Contrast(pil).enhance(1.5))
    # Pillow rounds the mean to an integer and truncates: up to 0.5*1.5 + 1 levels apart.
    assert maxdiff(cpu.contrast(img, factor=1.5), ref) <= 2


def test_point_ops_keep_alpha():
    img = make_image((5, 6, 4), seed=6)
    for out in (cpu.brightness(img, factor=3.0), cpu.contrast(img, factor=0.2), cpu.grayscale(img)):
        assert np.array_equal(out[..., 3], img[..., 3])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("target", [(1, 1), (3, 5), (5, 3), (40, 60)])
def test_resize_area_and_nearest_match_naive(shape, target):
    img = make_image(shape, seed=7)
    th, tw = target
    out = cpu.resize(img, width=tw, height=th, interpolation="area")
    assert maxdiff(out, naive.resize_area(img, th, tw)) <= 1  # float32 weights
    out = cpu.resize(img, width=tw, height=th, interpolation="nearest")
    assert maxdiff(out, naive.resize_nearest(img, th, tw)) == 0


@pytest.mark.parametrize("shape", [(41, 59, 3), (40, 60, 4), (48, 64, 3)])
@pytest.mark.parametrize("target", [(20, 30), (9, 13), (1, 1), (8, 16), (24, 32)])
def test_resize_area_matches_opencv_when_shrinking(target, shape):
    """Covers both paths: exact integer factors (integer block sums) and fractional ones."""
    img = make_image(shape, seed=8)
    th, tw = target
    if th > shape[0] or tw > shape[1]:
        pytest.skip("not a shrink")
    ref = cv2.resize(img, (tw, th), interpolation=cv2.INTER_AREA)
    assert maxdiff(cpu.resize(img, width=tw, height=th), ref) <= 1  # auto = area


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("target", [(20, 30), (60, 100), (41, 13), (1, 1), (3, 200)])
def test_resize_bilinear_matches_opencv(target, channels):
    img = make_image((41, 59, channels), seed=9)
    th, tw = target
    ref = cv2.resize(img, (tw, th), interpolation=cv2.INTER_LINEAR)
    out = cpu.resize(img, width=tw, height=th, interpolation="bilinear")
    assert maxdiff(out, ref) <= 1  # OpenCV: 11-bit fixed-point weights


@pytest.mark.parametrize("target", [(20, 30), (18, 26), (80, 120)])
def test_resize_lanczos_matches_pillow(target):
    img = smooth_image((37, 53, 3))
    th, tw = target
    ref = np.asarray(Image.fromarray(img).resize((tw, th), Image.LANCZOS))
    out = cpu.resize(img, width=tw, height=th, interpolation="lanczos")
    assert maxdiff(out, ref) <= 2  # Pillow rounds to uint8 between its two passes


@pytest.mark.parametrize("shape", [(1, 2, 3), (2, 2, 4), (5, 7, 3), (31, 17, 3)])
@pytest.mark.parametrize("target", [(3, 100), (1, 1), (9, 4), (40, 60)])
def test_resize_lanczos_matches_naive(shape, target):
    """Includes 2-pixel inputs, where Lanczos has two taps with a negative lobe."""
    img = make_image(shape, seed=17)
    img[..., 0] = np.where(np.arange(shape[1]) % 2 == 0, 0, 255)  # hard edges: overshoot
    th, tw = target
    out = cpu.resize(img, width=tw, height=th, interpolation="lanczos")
    assert maxdiff(out, naive.resize_lanczos(img, th, tw)) <= 1  # float32 vs float64


def test_resize_sizes_and_alpha():
    img = make_image((10, 20, 4), seed=10)
    assert cpu.resize(img, width=5).shape == (3, 5, 4)  # 2.5 rounds half up
    assert cpu.resize(img, height=30).shape == (30, 60, 4)
    assert cpu.resize(img, scale=0.5).shape == (5, 10, 4)
    flat = np.zeros((8, 8, 4), np.uint8)
    flat[..., 3] = 77
    assert np.all(cpu.resize(flat, scale=1.5, interpolation="lanczos")[..., 3] == 77)


def test_resize_target_rules():
    assert resize_target(1080, 1920, width=960) == (540, 960)
    assert resize_target(1080, 1920, height=100) == (100, 178)
    assert resize_target(1080, 1920, width=10, height=10) == (10, 10)
    assert resize_target(3, 3, scale=0.01) == (1, 1)
    with pytest.raises(FilterFailed, match="not both"):
        resize_target(10, 10, width=5, scale=2.0)
    with pytest.raises(FilterFailed, match="width, height or scale"):
        resize_target(10, 10)
    with pytest.raises(FilterFailed, match="megapixels"):
        resize_target(100, 100, width=16384, height=16384)


def test_pixelate_plain_blocks_match_naive():
    for shape, block in (((1, 1, 3), 8), ((17, 23, 4), 4), ((16, 16, 3), 1), ((9, 30, 3), 7)):
        img = make_image(shape, seed=11)
        small = naive.block_average(img, block)
        out = cpu.pixelate(img, block_size=block, palette="none")
        assert maxdiff(out, naive.upscale(small, block, *shape[:2])) == 0  # integer means
        kept = cpu.pixelate(img, block_size=block, palette="none", upscale=False)
        assert maxdiff(kept, small) == 0


def test_pixelate_matches_opencv_area_on_whole_blocks():
    img = make_image((32, 48, 3), seed=12)
    small = cv2.resize(img, (6, 4), interpolation=cv2.INTER_AREA)
    ref = cv2.resize(small, (48, 32), interpolation=cv2.INTER_NEAREST)
    assert maxdiff(cpu.pixelate(img, block_size=8, palette="none"), ref) <= 1


@pytest.mark.parametrize("palette", ["gameboy", "pico-8", "cga", "grayscale-4", "adaptive"])
@pytest.mark.parametrize("dither", ["none", "floyd-steinberg", "bayer"])
def test_pixelate_output_uses_only_palette_colours(palette, dither):
    img = make_image((20, 28, 4), seed=13)
    out = cpu.pixelate(img, block_size=4, palette=palette, palette_size=6, dither=dither,
                       outline=True, upscale=False)
    colours = {tuple(p) for p in out[..., :3].reshape(-1, 3)}
    if palette == "adaptive":
        assert len(colours) <= 6
    else:
        from filters.palettes import NAMED_PALETTES
        assert colours <= set(NAMED_PALETTES[palette])
    # Alpha is the block average, never quantised.
    assert maxdiff(out[..., 3:], naive.block_average(img, 4)[..., 3:]) == 0


def test_pixelate_named_palette_no_dither_is_nearest_colour():
    from filters.palettes import named_palette

    img = make_image((15, 21, 3), seed=14)
    small = naive.block_average(img, 3)
    out = cpu.pixelate(img, block_size=3, palette="pico-8", upscale=False)
    assert maxdiff(out, naive.nearest_colours(small, named_palette("pico-8"))) == 0


def test_pixelate_is_deterministic():
    img = make_image((30, 40, 3), seed=15)
    a = cpu.pixelate(img, block_size=2, palette_size=8, method="kmeans")
    b = cpu.pixelate(img, block_size=2, palette_size=8, method="kmeans")
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda img: cpu.blur(img, radius=0.0), "blur.radius"),
        (lambda img: cpu.blur(img, radius=float("nan")), "blur.radius"),
        (lambda img: cpu.sharpen(img, amount=11.0), "sharpen.amount"),
        (lambda img: cpu.edges(img, threshold=300), "edges.threshold"),
        (lambda img: cpu.brightness(img, factor="x"), "brightness.factor"),
        (lambda img: cpu.pixelate(img, block_size=0), "pixelate.block_size"),
        (lambda img: cpu.pixelate(img, palette="nes"), "pixelate.palette"),
        (lambda img: cpu.pixelate(img, dither="random"), "pixelate.dither"),
        (lambda img: cpu.resize(img, width=4, interpolation="cubic"), "resize.interpolation"),
        (lambda img: cpu.grayscale(img.astype(np.float32)), "uint8"),
        (lambda img: cpu.grayscale(img[..., 0]), "shape"),
        (lambda img: cpu.grayscale(img[..., :2]), "shape"),
        (lambda img: cpu.grayscale(img[:0]), "no pixels"),
    ],
)
def test_bad_arguments_raise_filter_failed(call, message):
    with pytest.raises(FilterFailed, match=message):
        call(make_image((4, 5, 3)))


def test_read_only_input_uses_the_compiled_signature():
    img = make_image((6, 7, 3), seed=18)
    cpu.grayscale(img)
    signatures = len(cpu_point._grayscale.signatures)
    frozen = img.copy()
    frozen.flags.writeable = False  # e.g. np.frombuffer over bytes from Redis
    assert np.array_equal(cpu.grayscale(frozen), cpu.grayscale(img))
    assert len(cpu_point._grayscale.signatures) == signatures


def test_non_contiguous_input_is_accepted():
    img = make_image((12, 16, 3), seed=16)[:, ::2]
    assert maxdiff(cpu.blur(img, radius=1.0), naive.blur(np.ascontiguousarray(img), 1.0)) <= 1
