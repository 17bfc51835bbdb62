"""Pixel art that looks right: perceptual colour (OKLab, CIEDE2000), the README sample's
red disc under PICO-8, contrast-adaptive dithering.

Reference values are published ones: Björn Ottosson's OKLab test pairs ("A perceptual
color space for image processing", 2020: XYZ -> OKLab to 3 decimals) and Sharma, Wu and
Dalal's CIEDE2000 test data (2005, to 4 decimals).
"""
from __future__ import annotations

import numpy as np
import pytest

from filters import colour, cpu, palettes, palettes_map, samples
from tests import naive

# Ottosson's table: CIE XYZ (D65) -> OKLab, published to three decimals.
OKLAB_PAIRS = [
    ((0.950, 1.000, 1.089), (1.000, 0.000, 0.000)),
    ((1.000, 0.000, 0.000), (0.450, 1.236, -0.019)),
    ((0.000, 1.000, 0.000), (0.922, -0.671, 0.263)),
    ((0.000, 0.000, 1.000), (0.153, -1.415, -0.449)),
]

# Sharma, Wu and Dalal (2005), pairs 1, 2, 3, 7, 17, 25 of their test data.
CIEDE2000_PAIRS = [
    ((50.0000, 2.6772, -79.7751), (50.0000, 0.0000, -82.7485), 2.0425),
    ((50.0000, 3.1571, -77.2803), (50.0000, 0.0000, -82.7485), 2.8615),
    ((50.0000, 2.8361, -74.0200), (50.0000, 0.0000, -82.7485), 3.4412),
    ((50.0000, 0.0000, 0.0000), (50.0000, -1.0000, 2.0000), 2.3669),
    ((50.0000, 2.5000, 0.0000), (73.0000, 25.0000, -18.0000), 27.1492),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
]

PICO8_RED = (255, 0, 77)


@pytest.mark.parametrize("xyz,lab", OKLAB_PAIRS)
def test_oklab_matches_ottossons_published_pairs(xyz, lab):
    assert colour.xyz_to_oklab(np.array(xyz)) == pytest.approx(lab, abs=0.0015)


def test_srgb_to_oklab_agrees_with_the_xyz_route_and_known_colours():
    rgb = np.random.default_rng(0).integers(0, 256, (500, 3))
    via_xyz = colour.xyz_to_oklab(colour.srgb_to_linear(rgb) @ colour.SRGB_TO_XYZ.T)
    assert np.abs(colour.srgb_to_oklab(rgb) - via_xyz).max() < 2e-3
    # sRGB red is oklab(0.62796 0.22486 0.12585) (CSS Color 4 / Ottosson), white is L=1.
    assert colour.srgb_to_oklab(np.array([255, 0, 0])) == pytest.approx(
        (0.62796, 0.22486, 0.12585), abs=1e-4)
    assert colour.srgb_to_oklab(np.array([255, 255, 255])) == pytest.approx((1, 0, 0), abs=1e-6)


def test_oklab_round_trip_and_the_kernels_float32_conversion():
    rgb = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    assert np.array_equal(colour.oklab_to_srgb8(colour.srgb_to_oklab(rgb)), rgb)
    # The kernels' float32 conversion (table, exponent-trick cube root with two Halley
    # steps) against the float64 reference, over every level of each channel too.
    assert np.abs(colour.image_to_oklab(rgb) - naive.oklab(rgb)).max() < 2e-6
    levels = np.zeros((256, 7, 3), np.uint8)
    for i, mask in enumerate([(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1),
                              (1, 0, 1), (1, 1, 1)]):
        levels[:, i] = np.arange(256)[:, None] * np.array(mask)
    assert np.abs(colour.image_to_oklab(levels) - naive.oklab(levels)).max() < 2e-6
    # ... and the published values: sRGB red oklab(0.62796 0.22486 0.12585), white L=1.
    known = colour.image_to_oklab(np.array([[[255, 0, 0], [255, 255, 255], [0, 0, 0]]],
                                           np.uint8))[0]
    assert known[0] == pytest.approx((0.62796, 0.22486, 0.12585), abs=1e-4)
    assert known[1] == pytest.approx((1, 0, 0), abs=1e-6)
    assert known[2] == pytest.approx((0, 0, 0), abs=1e-6)


def test_batched_cpu_conversion_is_the_per_pixel_function_bit_for_bit():
    """image_to_oklab (and the mapping kernel) convert in batches (colour.oklab_span);
    the GPU converts pixel by pixel with oklab_from_srgb8. Same float32 results, at every
    batch boundary and image shape (a 1-pixel-wide column, alpha too)."""
    from numba import njit
    per_pixel = njit(colour.oklab_from_srgb8)
    rng = np.random.default_rng(2)
    for shape in ((1, 1, 3), (9, 1, 3), (3, 257, 3), (2, 300, 4), (70000, 1, 3)):
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        got = colour.image_to_oklab(img).reshape(-1, 3)
        flat = img.reshape(-1, shape[2])
        for i in np.unique(np.r_[0:min(len(flat), 600), len(flat) - 300:len(flat)]
                           .clip(0, len(flat) - 1)):
            want = per_pixel(colour.LINEAR_LUT, flat[i, 0], flat[i, 1], flat[i, 2])
            assert tuple(got[i]) == tuple(np.float32(v) for v in want), (shape, i)


@pytest.mark.parametrize("lab1,lab2,expected", CIEDE2000_PAIRS)
def test_ciede2000_matches_sharmas_test_data(lab1, lab2, expected):
    assert float(colour.delta_e_2000(np.array(lab1), np.array(lab2))) == pytest.approx(
        expected, abs=1e-4)
    assert float(colour.delta_e_2000(np.array(lab2), np.array(lab1))) == pytest.approx(
        expected, abs=1e-4)


def test_cielab_of_known_colours():
    # D65 white is L* 100; sRGB red is L* 53.24, a* 80.09, b* 67.20 (the usual figures).
    assert colour.srgb_to_cielab(np.array([255, 255, 255])) == pytest.approx((100, 0, 0), abs=1e-3)
    assert colour.srgb_to_cielab(np.array([255, 0, 0])) == pytest.approx(
        (53.24, 80.09, 67.20), abs=0.02)


def _disc_blocks(block: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The README sample (`small`), and which small-image cells lie well inside its red
    disc (centre (0.50, 0.30), radius 0.16 of the height, colour (230, 60, 50))."""
    img = samples.sample_array("small")
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:-(-h // block), 0:-(-w // block)]
    cy, cx = (ys + 0.5) * block / h, (xs + 0.5) * block / h
    inside = (cx - 0.50 * w / h) ** 2 + (cy - 0.30) ** 2 <= (0.16 - 1.5 * block / h) ** 2
    return img, inside


def test_readme_samples_red_disc_stays_red_under_pico8():
    """RGB distance chose PICO-8's brown (#AB5236) for the disc; OKLab picks its red."""
    img, inside = _disc_blocks(8)
    assert tuple(img[108, 320]) == (230, 60, 50)
    small = cpu.pixelate(img, block_size=8, palette="pico-8", upscale=False)
    assert inside.sum() > 50
    assert np.all(small[inside] == PICO8_RED)
    # Upscaled: the disc's centre pixel is red too, and brown appears nowhere in the disc.
    full = cpu.pixelate(img, palette="pico-8")
    assert tuple(full[108, 320]) == PICO8_RED
    # Dithered, red is still the disc's main colour: dithering mixes in some brown (the
    # disc is darker and more orange than PICO-8's red), as it should.
    for dither in ("bayer", "floyd-steinberg", "floyd-steinberg-adaptive"):
        out = cpu.pixelate(img, block_size=8, palette="pico-8", dither=dither, upscale=False)
        red = np.all(out[inside] == PICO8_RED, axis=-1).mean()
        assert red >= 0.6, (dither, red)


def test_rgb_distance_would_have_chosen_brown():
    """Why the test above matters: the disc colour is nearer brown in RGB, red in OKLab
    and in CIEDE2000."""
    disc = np.array([230, 60, 50])
    brown, red = np.array([171, 82, 54]), np.array(PICO8_RED)
    assert np.sum((disc - brown) ** 2) < np.sum((disc - red) ** 2)
    lab = colour.srgb_to_cielab(np.stack([disc, brown, red]))
    assert colour.delta_e_2000(lab[0], lab[2]) < colour.delta_e_2000(lab[0], lab[1])
    ok = colour.srgb_to_oklab(np.stack([disc, brown, red]))
    assert np.linalg.norm(ok[0] - ok[2]) < np.linalg.norm(ok[0] - ok[1])


def _flat_patch_in_gradient() -> tuple[np.ndarray, tuple[slice, slice]]:
    """A horizontal grey ramp with a flat patch whose colour is just off a palette grey."""
    img = np.repeat(np.linspace(0, 255, 64)[None, :], 40, axis=0)
    img = np.repeat(img[..., None], 3, axis=2)
    patch = (slice(8, 32), slice(20, 44))
    img[patch] = (92, 89, 86)  # within FLAT_ERROR of grayscale-4's 85 grey
    return np.floor(img + 0.5).astype(np.uint8), patch


def test_adaptive_dither_keeps_flat_areas_clean_and_still_dithers_gradients():
    img, patch = _flat_patch_in_gradient()
    pal = palettes.named_palette("grayscale-4")
    ok = colour.srgb_to_oklab(np.array([92, 89, 86]))
    assert np.linalg.norm(ok - colour.srgb_to_oklab(np.array([85, 85, 85]))) \
        < palettes_map.FLAT_ERROR
    plain = palettes.floyd_steinberg(img, pal)
    adaptive = palettes.adaptive_floyd_steinberg(img, pal)
    # Plain Floyd-Steinberg sprinkles other greys into the flat patch; adaptive does not.
    assert len(np.unique(plain[patch].reshape(-1, 3), axis=0)) > 1
    assert np.all(adaptive[patch] == 85)
    # Away from the patch the ramp is still dithered: more than the 4 flat bands of plain
    # mapping, with each column's mean near the ramp's value.
    ramp = (slice(0, 40), slice(0, 64))
    rows = np.r_[0:8, 32:40]
    mean_err = np.abs(adaptive[rows][..., 0].mean(axis=0) - img[rows][..., 0].mean(axis=0))
    mapped = palettes.map_to_palette(img, pal)
    mapped_err = np.abs(mapped[rows][..., 0].mean(axis=0) - img[rows][..., 0].mean(axis=0))
    assert mean_err.mean() < 0.5 * mapped_err.mean()
    assert set(np.unique(adaptive[ramp])) == {0, 85, 170, 255}


def test_adaptive_dither_diffuses_less_on_edges():
    img, _ = _flat_patch_in_gradient()
    gain = palettes.adaptive_diffusion_map(img)
    assert gain.shape == img.shape[:2] and gain.dtype == np.float32
    assert np.all(gain[20, 2:18] == 1.0)            # smooth ramp: full diffusion
    assert gain[20, 43] == pytest.approx(palettes_map.EDGE_GAIN)  # patch edge (90 vs 178)
    assert np.all((gain >= palettes_map.EDGE_GAIN - 1e-6) & (gain <= 1.0))


def test_flower_buds_keep_a_colour_at_8_colours(shared_images):
    """flower.jpg's small dark-red buds (a few hundred of 172 800 pixels) win one of
    8 adaptive entries: one within CIEDE2000 10 of the buds' colour, and the bud pixels
    are mapped to it. Fitted to counts alone, the nearest entry was 30 away."""
    from filters.io import decode_image
    img = decode_image((shared_images / "valid" / "flower.jpg").read_bytes())
    out = cpu.pixelate(img, block_size=1, palette_size=8, upscale=False)
    palette = np.unique(out.reshape(-1, 3), axis=0)
    assert len(palette) <= 8
    bud = colour.srgb_to_cielab(np.array([129, 36, 44]))  # the buds' reference colour
    de = colour.delta_e_2000(colour.srgb_to_cielab(palette), bud)
    assert de.min() <= 10, de.min()
    entry = palette[int(np.argmin(de))]
    buds = (img[..., 0].astype(int) - img[..., 1] > 70) & (img[..., 0] < 170)
    assert buds.sum() >= 100
    assert np.all(out[buds] == entry, axis=-1).mean() >= 0.5


def test_salience_scores_small_vivid_spots_not_grey_or_large_areas():
    from filters import palettes_fit, palettes_salience
    img = np.zeros((40, 40, 3), np.uint8) + (90, 110, 70)   # muted green field
    img[:, 30:] = (230, 40, 40)                             # a large vivid area
    img[10:13, 10:13] = (220, 30, 40)                       # a small vivid spot
    img[25:28, 10:13] = (128, 128, 128)                     # a small grey spot
    index = palettes_fit.sample_indices(40 * 40)
    sal = palettes_salience.salience(img, index).reshape(40, 40)
    assert sal[11, 11] > 0.5                 # small, vivid, unlike its surround
    assert sal[26, 11] == 0.0                # grey: no chroma
    assert sal[20, 36] == 0.0                # inside the large red area: like its surround
    assert sal[2, 2] == 0.0                  # the muted field
