"""Mapping the small image to a palette in OKLab: nearest colour, ordered (Bayer),
Floyd-Steinberg and contrast-adaptive error diffusion, and the dark outline.

Every pixel is converted to OKLab (filters.colour) and takes the palette colour at the
least squared OKLab distance, lowest index winning ties: perceptual, so a red stays red
where squared RGB distance would call it brown. The GPU kernel compiles the same plain
Python conversion (colour.oklab_from_srgb8) and nearest_colour; the CPU searches with
_search, which computes the same float32 distances and gives the same answer (tests/
check both against each other, ties included), so both backends pick the same colour. Error diffusion is sequential by nature (each pixel's error feeds the next),
so it runs here on the small image, for the GPU path too, and diffuses OKLab error.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from filters.colour import (
    CHUNK,
    LINEAR_LUT,
    NJIT_CONVERT,
    NJIT_CONVERT_PARALLEL,
    image_to_oklab,
    oklab_span,
    palette_oklab,
)
from filters.cpu_common import (
    LUMA_B,
    LUMA_G,
    LUMA_R,
    NJIT_PARALLEL,
    NJIT_SERIAL,
    PARALLEL_MIN_WORK,
)
from filters.cpu_search import smallest
from filters.palettes_fit import refit_to_labels

DITHERS = ("none", "floyd-steinberg", "floyd-steinberg-adaptive", "bayer")
OUTLINE_THRESHOLD = 64.0       # luma step to a brighter 4-neighbour that draws an outline
OUTLINE_DARKEN = 0.35          # without a palette, outline pixels are scaled by this
BAYER_SIZE = 8
MAP_PARALLEL_MIN_WORK = min(PARALLEL_MIN_WORK, 1_000_000)
# Contrast-adaptive diffusion (see adaptive_diffusion_map and docs/filters.md), OKLab units
# (0.01 is about one CIEDE2000 unit for most colours):
FLAT_ERROR = 0.02              # a pixel this close to a palette colour takes it, no noise
FLAT_RATIO = 0.4               # ... as does one within FLAT_RATIO_CAP of it and this much
FLAT_RATIO_CAP = 0.05          # nearer to it than to the 2nd nearest (not between two)
DIFFUSION_LEVEL = 15.0 / 16.0  # share of the error passed on (libimagequant's): no build-up
EDGE_LOW, EDGE_HIGH = 0.04, 0.20   # local contrast where diffusion starts/stops fading
EDGE_GAIN = 0.35               # diffusion kept on the strongest edges
MAX_DIFFUSED_ERROR = 0.15      # error passed on per pixel is capped (no streaks/bleeding)
L_MIN, L_MAX, AB_LIMIT = 0.0, 1.0, 0.4   # diffused values are clamped to this box
SORTED_SEARCH_MIN = 48         # palettes this large: the flat check searches in L order


def nearest_colour(pal_lab, ok_l, ok_a, ok_b):
    """Index of the palette colour nearest to OKLab (ok_l, ok_a, ok_b): float32 squared
    OKLab distance, lowest index winning ties. Plain Python, compiled as a CUDA device
    function in filters.gpu_pixelate; the CPU's _search gives the same answer."""
    best = 0
    best_d = np.float32(3.0e38)
    for k in range(pal_lab.shape[0]):
        dl = ok_l - pal_lab[k, 0]
        da = ok_a - pal_lab[k, 1]
        db = ok_b - pal_lab[k, 2]
        d = dl * dl + da * da + db * db
        if d < best_d:
            best_d = d
            best = k
    return best


@njit(inline="always", cache=True)
def _search(pal_t, ok_l, ok_a, ok_b, dist):
    """nearest_colour for the CPU, same answer (the same float32 distances, lowest index
    on ties): `pal_t` is the palette's OKLab transposed (3, k), `dist` scratch of k.
    Every distance first (a loop the compiler vectorises), then the minimum
    (cpu_search.smallest), then its first index: ~1.7x faster than one branchy pass. Returns (index, squared distance)."""
    k = pal_t.shape[1]
    for j in range(k):
        dl = ok_l - pal_t[0, j]
        da = ok_a - pal_t[1, j]
        db = ok_b - pal_t[2, j]
        dist[j] = dl * dl + da * da + db * db
    best_d = smallest(dist)
    best = 0
    while dist[best] != best_d:
        best += 1
    return best, best_d


@njit(inline="always", cache=True)
def _second(dist, best):
    """The smallest of `dist` other than at index `best` (inf for one entry)."""
    second_d = np.float32(np.inf)
    for j in range(dist.shape[0]):
        if j != best:
            second_d = min(second_d, dist[j])
    return second_d


@njit(inline="always", cache=True)
def _search_sorted(pal_sorted, order, ok_l, ok_a, ok_b):
    """(index, squared distance, second smallest squared distance) of the nearest palette
    colour - _search's answer, lowest palette index on ties - for a LARGE palette without
    computing every distance: `pal_sorted` is the palette's OKLab sorted by L, `order`
    each row's palette index. Entries are visited outwards from the pixel's L, each way
    until the L difference alone exceeds the second-best distance: no entry further out
    can beat or tie either. The flat check of adaptive diffusion needs both distances;
    for 256 colours this is ~3x faster than computing all of them."""
    k = pal_sorted.shape[0]
    lo, hi = 0, k
    while lo < hi:  # the first row with L >= ok_l
        mid = (lo + hi) // 2
        if pal_sorted[mid, 0] < ok_l:
            lo = mid + 1
        else:
            hi = mid
    best = k
    best_d = np.float32(np.inf)
    second_d = np.float32(np.inf)
    for step in (1, -1):
        j = lo if step == 1 else lo - 1
        while 0 <= j < k:
            dl = ok_l - pal_sorted[j, 0]
            if dl * dl > second_d:
                break
            da = ok_a - pal_sorted[j, 1]
            db = ok_b - pal_sorted[j, 2]
            d = dl * dl + da * da + db * db
            index = order[j]
            if d < best_d or (d == best_d and index < best):
                second_d = best_d
                best_d = d
                best = index
            elif d < second_d:
                second_d = d
            j += step
    return best, best_d, second_d


@njit(**NJIT_CONVERT)
def _map_rows(small, palette, pal_lab, lut, thresholds, strength, out, y0, y1):
    """Nearest palette colour (OKLab) per pixel of rows y0..y1, after adding
    strength * thresholds[y % n, x % n] to L (the ordered-dither bias; 0 for plain
    mapping)."""
    w, channels = small.shape[1], small.shape[2]
    n = thresholds.shape[0]
    pal_t = np.ascontiguousarray(pal_lab.T)
    dist = np.empty(pal_lab.shape[0], np.float32)
    lab = np.empty((w, 3), np.float32)
    lms = np.empty((3, CHUNK), np.float32)
    for y in range(y0, y1):
        oklab_span(small[y], lut, 0, w, lms, lab)  # the row's OKLab, batched
        row = thresholds[y % n]
        tx = 0  # x % n, kept without a division per pixel
        for x in range(w):
            ok_l, ok_a, ok_b = lab[x, 0], lab[x, 1], lab[x, 2]
            ok_l += strength * row[tx]
            tx += 1
            if tx == n:
                tx = 0
            best, _ = _search(pal_t, ok_l, ok_a, ok_b, dist)
            out[y, x, 0] = palette[best, 0]
            out[y, x, 1] = palette[best, 1]
            out[y, x, 2] = palette[best, 2]
            for c in range(3, channels):
                out[y, x, c] = small[y, x, c]


@njit(**NJIT_CONVERT_PARALLEL)
def _map_parallel(small, palette, pal_lab, lut, thresholds, strength, out, parts):
    h = small.shape[0]
    for b in prange(parts):
        _map_rows(small, palette, pal_lab, lut, thresholds, strength, out,
                  b * h // parts, (b + 1) * h // parts)


def _map_nearest(small: np.ndarray, palette: np.ndarray, thresholds: np.ndarray,
                 strength: float, out: np.ndarray) -> None:
    pal_lab = palette_oklab(palette)
    parts = min(small.shape[0], 4 * numba.get_num_threads())
    # Each pixel costs an OKLab conversion (~25 ns) besides the search: a 480 x 270
    # image is ~5 ms of work, worth two threads.
    work = small.shape[0] * small.shape[1] * (len(palette) + 3)
    if work >= MAP_PARALLEL_MIN_WORK and parts > 1:
        _map_parallel(small, palette, pal_lab, LINEAR_LUT, thresholds, np.float32(strength),
                      out, parts)
    else:
        _map_rows(small, palette, pal_lab, LINEAR_LUT, thresholds, np.float32(strength),
                  out, 0, small.shape[0])


def map_to_palette(small: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Each pixel replaced by its nearest palette colour (OKLab distance); alpha kept."""
    small = np.ascontiguousarray(small)
    out = np.empty_like(small)
    _map_nearest(small, np.ascontiguousarray(palette, dtype=np.uint8),
                 np.zeros((1, 1), np.float32), 0.0, out)
    return out


def bayer_matrix(n: int = BAYER_SIZE) -> np.ndarray:
    """n x n ordered-dither thresholds in (-0.5, 0.5), float32 (n a power of two)."""
    m = np.zeros((1, 1), np.int64)
    while m.shape[0] < n:
        m = np.block([[4 * m, 4 * m + 2], [4 * m + 3, 4 * m + 1]])
    return ((m + 0.5) / (m.size) - 0.5).astype(np.float32)


def bayer_strength(palette: np.ndarray) -> float:
    """Dither amplitude on OKLab L: about one palette step.

    The mean OKLab distance from each palette colour to its nearest other colour (0.33
    for grayscale-4, whose L steps are 0.45, 0.29 and 0.26).
    """
    pal = palette_oklab(np.asarray(palette, dtype=np.uint8).reshape(-1, 3)).astype(np.float64)
    if len(pal) < 2:
        return 0.0
    dist = np.sqrt(((pal[:, None, :] - pal[None, :, :]) ** 2).sum(axis=-1))
    np.fill_diagonal(dist, np.inf)
    return float(dist.min(axis=1).mean())


def ordered_dither(small: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Bayer 8x8 ordered dithering (on OKLab L) to `palette`; alpha kept. Parallel."""
    small = np.ascontiguousarray(small)
    out = np.empty_like(small)
    palette = np.ascontiguousarray(palette, dtype=np.uint8)
    _map_nearest(small, palette, bayer_matrix(), bayer_strength(palette), out)
    return out


@njit(inline="always", cache=True)
def _spread(row, x, e0, e1, e2, weight):
    row[x, 0] += e0 * weight
    row[x, 1] += e1 * weight
    row[x, 2] += e2 * weight


@njit(**NJIT_SERIAL)
def _diffuse(small, own, palette, pal_lab, pruned, gain, flat_error, flat_ratio, ratio_cap,
             max_error, out, labels):
    """Floyd-Steinberg in OKLab (`own` = the pixels' OKLab, raster order), with per-pixel
    control:
    - a pixel whose OWN colour is within flat_error of its nearest palette colour, or
      within ratio_cap of it and nearer to it than flat_ratio x the distance to the
      second nearest, takes that colour and passes no error on (incoming error is
      dropped): areas the palette already matches stay free of dither noise, and the
      colours dithered are those that lie between palette entries (gradients, where
      banding shows);
    - the error passed on is scaled by gain[y % gh, x % gw] and capped at max_error.
    Plain Floyd-Steinberg is gain 1 everywhere, flat_error and flat_ratio 0, max_error
    infinite. labels[y, x] = the palette index taken. pruned: the flat check searches in
    L order (_search_sorted, for large palettes; the same answers as _search)."""
    h, w, channels = small.shape
    gh, gw = gain.shape
    pal_t = np.ascontiguousarray(pal_lab.T)
    dist = np.empty(pal_lab.shape[0], np.float32)
    order = np.argsort(pal_lab[:, 0], kind="mergesort")
    pal_sorted = np.ascontiguousarray(pal_lab[order])
    buf = np.zeros((2, w + 2, 3), np.float32)   # this row's and the next row's error
    lo = (np.float32(L_MIN), np.float32(-AB_LIMIT), np.float32(-AB_LIMIT))
    hi = (np.float32(L_MAX), np.float32(AB_LIMIT), np.float32(AB_LIMIT))
    flat2 = flat_error * flat_error
    capped = max_error < np.inf
    ratio2 = flat_ratio * flat_ratio
    cap2 = ratio_cap * ratio_cap
    for y in range(h):
        here = buf[y & 1]
        below = buf[1 - (y & 1)]
        below[:] = 0.0
        gain_row = gain[y % gh]
        gx = 0  # x % gw, kept without a division per pixel
        for x in range(w):
            scale = gain_row[gx]
            gx += 1
            if gx == gw:
                gx = 0
            o_l, o_a, o_b = own[y, x, 0], own[y, x, 1], own[y, x, 2]
            if flat_error > 0 or flat_ratio > 0:
                if pruned:
                    k, d1, d2 = _search_sorted(pal_sorted, order, o_l, o_a, o_b)
                else:
                    k, d1 = _search(pal_t, o_l, o_a, o_b, dist)
                    d2 = _second(dist, k)
                if d1 <= flat2 or (d1 <= ratio2 * d2 and d1 <= cap2):
                    labels[y, x] = k
                    for c in range(3):
                        out[y, x, c] = palette[k, c]
                    for c in range(3, channels):
                        out[y, x, c] = small[y, x, c]
                    continue
            v0 = min(max(o_l + here[x + 1, 0], lo[0]), hi[0])
            v1 = min(max(o_a + here[x + 1, 1], lo[1]), hi[1])
            v2 = min(max(o_b + here[x + 1, 2], lo[2]), hi[2])
            best, _ = _search(pal_t, v0, v1, v2, dist)
            e0 = v0 - pal_lab[best, 0]
            e1 = v1 - pal_lab[best, 1]
            e2 = v2 - pal_lab[best, 2]
            if capped:
                size = np.sqrt(e0 * e0 + e1 * e1 + e2 * e2) * scale
                if size > max_error:
                    scale *= max_error / size
            e0 *= scale
            e1 *= scale
            e2 *= scale
            _spread(here, x + 2, e0, e1, e2, np.float32(7.0 / 16.0))
            _spread(below, x, e0, e1, e2, np.float32(3.0 / 16.0))
            _spread(below, x + 1, e0, e1, e2, np.float32(5.0 / 16.0))
            _spread(below, x + 2, e0, e1, e2, np.float32(1.0 / 16.0))
            labels[y, x] = best
            for c in range(3):
                out[y, x, c] = palette[best, c]
            for c in range(3, channels):
                out[y, x, c] = small[y, x, c]


def error_diffusion(small: np.ndarray, palette: np.ndarray, adaptive: bool,
                    refits: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Floyd-Steinberg (adaptive: contrast-adaptive, see _diffuse and
    adaptive_diffusion_map) to `palette`; alpha kept. Sequential.

    refits > 0 (for a FITTED palette only): the palette is then chosen with dithering in
    mind, as libimagequant does - each entry moves to the robust mean
    (palettes_fit.refit_to_labels) of the pixels the dithered result gave it, and the
    image is dithered again, `refits` times. A fit to the undithered mapping is not the
    best palette for a dithered one: diffusion sends pixels to entries other than their
    nearest. Returns (result, the palette used).
    """
    small = np.ascontiguousarray(small)
    out = np.empty_like(small)
    labels = np.empty(small.shape[:2], np.int32)
    palette = np.ascontiguousarray(palette, dtype=np.uint8)
    lab = image_to_oklab(small)
    if adaptive:
        gain = adaptive_diffusion_map(small, lab) * np.float32(DIFFUSION_LEVEL)
        flat_error, flat_ratio = np.float32(FLAT_ERROR), np.float32(FLAT_RATIO)
        max_error = np.float32(MAX_DIFFUSED_ERROR)
    else:
        gain = np.ones((1, 1), np.float32)
        flat_error, flat_ratio, max_error = np.float32(0.0), np.float32(0.0), np.float32(np.inf)
    for step in range(refits + 1):
        if step:
            palette = refit_to_labels(lab, labels, palette)
        _diffuse(small, lab, palette, palette_oklab(palette),
                 len(palette) >= SORTED_SEARCH_MIN, gain, flat_error, flat_ratio,
                 np.float32(FLAT_RATIO_CAP), max_error, out, labels)
    return out, palette


def floyd_steinberg(small: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Floyd-Steinberg error diffusion (raster order, OKLab error) to `palette`; alpha
    kept. Sequential."""
    return error_diffusion(small, palette, adaptive=False)[0]


@njit(**NJIT_SERIAL)
def _local_contrast(lab, out):
    h, w = out.shape
    for y in range(h):
        for x in range(w):
            best = np.float32(0.0)
            for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                ny = min(max(y + dy, 0), h - 1)
                nx = min(max(x + dx, 0), w - 1)
                d0 = lab[ny, nx, 0] - lab[y, x, 0]
                d1 = lab[ny, nx, 1] - lab[y, x, 1]
                d2 = lab[ny, nx, 2] - lab[y, x, 2]
                best = max(best, np.sqrt(d0 * d0 + d1 * d1 + d2 * d2))
            out[y, x] = best


def local_contrast(lab: np.ndarray) -> np.ndarray:
    """(H, W) float32: the largest OKLab distance from each pixel to a 4-neighbour
    (edges clamped)."""
    out = np.empty(lab.shape[:2], np.float32)
    _local_contrast(np.ascontiguousarray(lab, dtype=np.float32), out)
    return out


def adaptive_diffusion_map(small: np.ndarray, lab: np.ndarray | None = None) -> np.ndarray:
    """(H, W) float32 diffusion gain: 1 where the image is smooth (gradients, where
    banding shows and dithering pays), fading to EDGE_GAIN across EDGE_LOW..EDGE_HIGH of
    local contrast (edges and texture mask banding, and diffusing there scatters speckle
    along the edge)."""
    contrast = local_contrast(image_to_oklab(small) if lab is None else lab)
    ramp = np.clip((contrast - EDGE_LOW) / (EDGE_HIGH - EDGE_LOW), 0.0, 1.0)
    return (1.0 - (1.0 - EDGE_GAIN) * ramp).astype(np.float32)


def adaptive_floyd_steinberg(small: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Error diffusion that leaves flat, well-matched areas clean: see _diffuse and
    adaptive_diffusion_map. Alpha kept. Sequential."""
    return error_diffusion(small, palette, adaptive=True)[0]


@njit(**NJIT_SERIAL)
def _outline(small, dark, use_dark, threshold, darken, out):
    """out = small with outline pixels (a 4-neighbour brighter by >= threshold luma,
    edges clamped) set to `dark` (use_dark) or scaled by `darken`."""
    h, w, channels = small.shape
    luma = np.empty((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            luma[y, x] = (np.float32(LUMA_R) * np.float32(small[y, x, 0])
                          + np.float32(LUMA_G) * np.float32(small[y, x, 1])
                          + np.float32(LUMA_B) * np.float32(small[y, x, 2]))
    for y in range(h):
        up, down = max(y - 1, 0), min(y + 1, h - 1)
        for x in range(w):
            for c in range(channels):
                out[y, x, c] = small[y, x, c]
            centre = luma[y, x]
            brighter = max(max(luma[up, x], luma[down, x]),
                           max(luma[y, max(x - 1, 0)], luma[y, min(x + 1, w - 1)])) - centre
            if brighter >= threshold:
                for c in range(3):
                    if use_dark:
                        out[y, x, c] = dark[c]
                    else:
                        out[y, x, c] = np.uint8(np.floor(np.float32(small[y, x, c]) * darken
                                                         + np.float32(0.5)))


def outline(small: np.ndarray, palette: np.ndarray | None) -> np.ndarray:
    """Darken pixels on the dark side of strong luma edges (a 1-pixel dark outline).

    A pixel is outlined when a 4-neighbour is brighter by OUTLINE_THRESHOLD or more. It
    becomes the palette's darkest colour (so the result stays in the palette), or, with no
    palette, its colour scaled by OUTLINE_DARKEN.
    """
    small = np.ascontiguousarray(small)
    out = np.empty_like(small)
    if palette is not None and len(palette):
        pal_luma = palette.astype(np.float32) @ np.array([LUMA_R, LUMA_G, LUMA_B], np.float32)
        dark = np.ascontiguousarray(palette[int(np.argmin(pal_luma))], dtype=np.uint8)
        use_dark = True
    else:
        dark, use_dark = np.zeros(3, np.uint8), False
    _outline(small, dark, use_dark, np.float32(OUTLINE_THRESHOLD), np.float32(OUTLINE_DARKEN), out)
    return out
