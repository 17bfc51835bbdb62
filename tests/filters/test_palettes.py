"""Palette fitting, mapping and dithering helpers (shared by the CPU and GPU pixelate).

Tolerances: palette mapping and Floyd-Steinberg are compared exactly (0 levels) with the
brute-force references in tests/naive.py; dithering quality is checked as a mean-colour
error in levels, stated per test.
"""
from __future__ import annotations

import numpy as np
import pytest

from filters import palettes
from filters.errors import FilterFailed
from tests import naive


def random_small(shape=(12, 17, 3), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_named_palettes_have_the_documented_sizes():
    sizes = {name: len(palettes.named_palette(name)) for name in palettes.NAMED_PALETTES}
    assert sizes == {"gameboy": 4, "pico-8": 16, "cga": 4, "grayscale-4": 4}
    assert {tuple(c) for c in palettes.named_palette("cga")} == {
        (0, 0, 0), (85, 255, 255), (255, 85, 255), (255, 255, 255)}
    with pytest.raises(FilterFailed, match="pixelate.palette"):
        palettes.named_palette("nes")


@pytest.mark.parametrize("method", ["kmeans", "median_cut"])
def test_fit_recovers_an_image_with_few_colours_exactly(method):
    colours = np.array([[255, 0, 0], [0, 128, 255], [20, 20, 20], [250, 250, 200]], np.uint8)
    idx = np.random.default_rng(1).integers(0, 4, (9, 11))
    small = colours[idx]
    fitted = palettes.fit_palette(small, 4, method)
    assert {tuple(c) for c in fitted} == {tuple(c) for c in colours}
    # More colours asked than exist: no invented colours.
    assert {tuple(c) for c in palettes.fit_palette(small, 16, method)} == {tuple(c) for c in colours}


@pytest.mark.parametrize("method", ["kmeans", "median_cut"])
def test_fit_on_one_pixel_and_sizes(method):
    one = np.array([[[10, 20, 30, 40]]], np.uint8)
    assert palettes.fit_palette(one, 16, method).tolist() == [[10, 20, 30]]
    fitted = palettes.fit_palette(random_small(), 8, method)
    assert fitted.dtype == np.uint8 and 1 <= len(fitted) <= 8
    with pytest.raises(FilterFailed, match="palette_size"):
        palettes.fit_palette(random_small(), 1, method)


def sse(small: np.ndarray, palette: np.ndarray) -> float:
    """Squared OKLab error of mapping `small` to `palette` (what the fit minimises)."""
    return float(naive.oklab_distances(small, palette).min(axis=-1).sum())


def test_kmeans_is_deterministic_and_not_worse_than_its_median_cut_seed():
    small = random_small((20, 30, 3), seed=2)
    a = palettes.kmeans(small, 8)
    assert np.array_equal(a, palettes.kmeans(small, 8))
    assert sse(small, a) <= sse(small, palettes.median_cut(small, 8)) * 1.001


def test_map_to_palette_is_brute_force_nearest():
    small = random_small((13, 9, 4), seed=3)
    pal = palettes.named_palette("pico-8")
    assert np.array_equal(palettes.map_to_palette(small, pal), naive.nearest_colours(small, pal))


def test_floyd_steinberg_matches_textbook_version():
    small = random_small((11, 14, 3), seed=4)
    pal = palettes.named_palette("gameboy")
    out = palettes.floyd_steinberg(small, pal)
    ref = naive.floyd_steinberg(small, pal)
    # float32 vs float64 error sums can flip a near-tie: allow a few of 154 pixels.
    assert np.mean(np.any(out != ref, axis=2)) <= 0.03


@pytest.mark.parametrize("dither", ["floyd_steinberg", "ordered_dither",
                                    "adaptive_floyd_steinberg"])
def test_dithering_keeps_the_mean_of_a_flat_grey(dither):
    grey = np.full((32, 32, 3), 120, np.uint8)
    pal = palettes.named_palette("grayscale-4")
    out = getattr(palettes, dither)(grey, pal)
    levels = set(np.unique(out))
    assert levels == {85, 170}  # a mix of the two neighbouring levels ...
    assert abs(out.mean() - 120) <= 4  # ... averaging to the input within 4 levels
    # Without dithering the whole image is one level.
    assert set(np.unique(palettes.map_to_palette(grey, pal))) == {85}


def test_bayer_matrix_is_a_permutation_of_thresholds():
    m = palettes.bayer_matrix(8)
    assert m.shape == (8, 8)
    ranks = np.sort(((m + 0.5) * 64 - 0.5).round().astype(int).ravel())
    assert np.array_equal(ranks, np.arange(64))
    assert np.array_equal(palettes.bayer_matrix(4), palettes.bayer_matrix(4))


def test_outline_darkens_the_dark_side_of_strong_edges():
    small = np.zeros((7, 7, 3), np.uint8) + 60
    small[2:5, 2:5] = 250
    pal = np.array([[10, 10, 10], [60, 60, 60], [250, 250, 250]], np.uint8)
    out = palettes.outline(small, pal)
    ring = np.zeros((7, 7), bool)
    ring[1, 2:5] = ring[5, 2:5] = ring[2:5, 1] = ring[2:5, 5] = True
    assert np.all(out[ring] == 10)  # darkest palette colour on the dark side
    assert np.array_equal(out[~ring], small[~ring])  # the bright square itself is kept
    no_palette = palettes.outline(small, None)
    assert np.all(no_palette[ring] == 21)  # 60 * 0.35 rounded


def test_quantize_small_with_no_palette_only_outlines():
    small = random_small((5, 6, 4), seed=5)
    assert np.array_equal(palettes.quantize_small(small, palette="none", dither="bayer"), small)
    assert np.array_equal(palettes.quantize_small(
        small, palette="none", dither="floyd-steinberg-adaptive"), small)
    with pytest.raises(FilterFailed, match="dither"):
        palettes.quantize_small(small, dither="random")


@pytest.mark.parametrize("colours", [8, 64, 256])
def test_nearest_search_equals_a_full_scan_with_ties(colours):
    """Large palettes use the pruned search: same answers, lowest index on equal distance."""
    rng = np.random.default_rng(colours)
    pal = rng.integers(0, 256, (colours, 3), dtype=np.uint8)
    pal[colours // 2:] = pal[: colours - colours // 2]  # duplicates: exact ties
    small = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    assert np.array_equal(palettes.map_to_palette(small, pal), naive.nearest_colours(small, pal))
    # Ordered dithering: OKLab L + bias, brute force in float64 as the reference.
    out = palettes.ordered_dither(small, pal)
    m = palettes.bayer_matrix()
    bias = palettes.bayer_strength(pal) * m[np.arange(23)[:, None] % 8, np.arange(31)[None, :] % 8]
    lab = naive.oklab(small)
    lab[..., 0] += bias
    d = ((lab[..., None, :] - naive.oklab(pal)[None, None]) ** 2).sum(axis=-1)
    ref = pal[np.argmin(d, axis=-1)]
    assert np.mean(np.any(out != ref, axis=2)) <= 0.01  # float32 kernel vs float64 near-ties


def test_refit_to_labels_moves_entries_to_robust_means_and_keeps_vivid_and_unused_ones():
    from filters import colour, palettes_fit
    img = np.zeros((4, 6, 3), np.uint8)
    labels = np.zeros((4, 6), np.int32)
    img[:2] = 100                       # entry 0's pixels: one grey
    img[2:] = 200                       # entry 1's: mostly another grey ...
    img[3, 5] = 40                      # ... and one far outlier
    labels[2:] = 1
    img[0, 0] = (230, 40, 40)           # a red pixel given the vivid entry 3
    labels[0, 0] = 3
    pal = np.array([[90, 90, 90], [210, 210, 210], [50, 50, 50], [200, 20, 60]], np.uint8)
    out = palettes_fit.refit_to_labels(colour.image_to_oklab(img), labels, pal)
    assert np.array_equal(out[0], [100, 100, 100])
    # Robust: the outlier pulls entry 1 far less than a plain mean would.
    plain = colour.oklab_to_srgb8(colour.image_to_oklab(img[2:]).reshape(-1, 3).mean(axis=0))
    assert abs(int(out[1, 0]) - 200) < 0.25 * abs(int(plain[0]) - 200)
    assert np.array_equal(out[2], pal[2])   # no pixels: stays
    assert np.array_equal(out[3], pal[3])   # vivid: stays


def test_error_diffusion_with_a_refit_uses_only_the_palette_it_returns():
    small = random_small((24, 20, 3), seed=11)
    pal = palettes.kmeans(small, 6)
    for adaptive in (False, True):
        out, used = palettes.error_diffusion(small, pal, adaptive, refits=1)
        assert used.shape == pal.shape and used.dtype == np.uint8
        colours = {tuple(c) for c in out.reshape(-1, 3)}
        assert colours <= {tuple(c) for c in used}
        assert not np.array_equal(used, pal)    # the fit moved


def test_cpu_search_gives_nearest_colours_answer_ties_included():
    """The CPU's vectorised search (palettes_map._search) and the plain nearest_colour
    the GPU compiles pick the same index, lowest on exact ties."""
    from numba import njit
    from filters import colour, palettes_map
    rng = np.random.default_rng(5)
    pal = rng.integers(0, 256, (24, 3), dtype=np.uint8)
    pal[12:] = pal[:12]                             # every colour twice: exact ties
    pal_lab = colour.palette_oklab(pal)
    search = njit(lambda t, l, a, b, d: palettes_map._search(t, l, a, b, d))
    pixels = colour.image_to_oklab(rng.integers(0, 256, (1, 400, 3), dtype=np.uint8))[0]
    pixels = np.concatenate([pixels, pal_lab])      # exactly on an entry, too
    pal_t = np.ascontiguousarray(pal_lab.T)
    dist = np.empty(len(pal), np.float32)
    for ok in pixels:
        want = palettes_map.nearest_colour(pal_lab, *ok)
        got, d = search(pal_t, ok[0], ok[1], ok[2], dist)
        assert got == want and want < 12
        assert d == dist.min()


def test_sorted_search_gives_the_full_searchs_answer_ties_included():
    """palettes_map._search_sorted (L order, pruned: the flat check for large palettes)
    returns what every distance gives: the nearest index (lowest on exact ties) and the
    two smallest distances."""
    from numba import njit
    from filters import colour, palettes_map
    rng = np.random.default_rng(8)
    pal = rng.integers(0, 256, (80, 3), dtype=np.uint8)
    pal[40:] = pal[:40]                               # every colour twice: exact ties
    pal[5] = pal[6][::-1]                             # and some other structure
    pal_lab = colour.palette_oklab(pal)
    order = np.argsort(pal_lab[:, 0], kind="mergesort")
    pal_sorted = np.ascontiguousarray(pal_lab[order])
    sorted_search = njit(lambda p, o, l, a, b: palettes_map._search_sorted(p, o, l, a, b))
    pixels = colour.image_to_oklab(rng.integers(0, 256, (1, 500, 3), dtype=np.uint8))[0]
    for ok in np.concatenate([pixels, pal_lab]):
        d = ((pal_lab - ok) ** 2).sum(axis=1, dtype=np.float32)
        best, best_d, second_d = sorted_search(pal_sorted, order, ok[0], ok[1], ok[2])
        assert best == palettes_map.nearest_colour(pal_lab, *ok)
        assert best_d == pytest.approx(float(d.min()), abs=1e-7)
        assert second_d == pytest.approx(float(np.sort(d)[1]), abs=1e-7)


def test_adaptive_diffusion_is_the_same_with_the_sorted_search(monkeypatch):
    from filters import palettes_map
    small = random_small((30, 40, 3), seed=12)
    pal = palettes.kmeans(small, 64)
    assert len(pal) >= palettes_map.SORTED_SEARCH_MIN
    sorted_out, sorted_pal = palettes.error_diffusion(small, pal, True, refits=1)
    monkeypatch.setattr(palettes_map, "SORTED_SEARCH_MIN", 10**6)
    full_out, full_pal = palettes.error_diffusion(small, pal, True, refits=1)
    assert np.array_equal(sorted_out, full_out) and np.array_equal(sorted_pal, full_pal)
