"""Palettes for pixelate: named palettes, k-means / median-cut fitting, mapping, dithering.

Everything here works on the SMALL (block-averaged) image, which is block_size^2 times
smaller than the input, so the CPU and the GPU paths share it: the GPU path averages
blocks and upscales on the device and calls `quantize_small` on the host in between.
Floyd-Steinberg is sequential by nature (each pixel's error feeds the next), which is
another reason it runs here, on the small image only.

All fitting is deterministic: median cut has no randomness and seeds k-means, which then
runs a fixed number of Lloyd iterations on a fixed-stride sample.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from filters.cpu_common import LUMA_B, LUMA_G, LUMA_R, NJIT_PARALLEL, NJIT_SERIAL
from filters.errors import FilterFailed

NAMED_PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "gameboy": ((15, 56, 15), (48, 98, 48), (139, 172, 15), (155, 188, 15)),
    "pico-8": (
        (0, 0, 0), (29, 43, 83), (126, 37, 83), (0, 135, 81),
        (171, 82, 54), (95, 87, 79), (194, 195, 199), (255, 241, 232),
        (255, 0, 77), (255, 163, 0), (255, 236, 39), (0, 228, 54),
        (41, 173, 255), (131, 118, 156), (255, 119, 168), (255, 204, 170),
    ),
    "cga": ((0, 0, 0), (85, 255, 255), (255, 85, 255), (255, 255, 255)),
    "grayscale-4": ((0, 0, 0), (85, 85, 85), (170, 170, 170), (255, 255, 255)),
}
PALETTE_CHOICES = ("adaptive", "none", *NAMED_PALETTES)
METHODS = ("kmeans", "median_cut")
DITHERS = ("none", "floyd-steinberg", "bayer")

KMEANS_ITERATIONS = 8          # fixed: deterministic and bounded time
FIT_SAMPLE = 32768             # at most this many pixels (fixed stride) are fitted
OUTLINE_THRESHOLD = 64.0       # luma step to a brighter 4-neighbour that draws an outline
OUTLINE_DARKEN = 0.35          # without a palette, outline pixels are scaled by this
BAYER_SIZE = 8
# Distance evaluations (pixels x colours) below which one thread is faster than waking
# the others (measured: a parallel region costs ~0.1 ms idle, milliseconds under load).
PARALLEL_MIN_WORK = 4_000_000


def named_palette(name: str) -> np.ndarray:
    """The named palette as a (k, 3) uint8 array (a fresh copy)."""
    try:
        return np.array(NAMED_PALETTES[name], dtype=np.uint8)
    except KeyError:
        raise FilterFailed(
            f"pixelate.palette must be one of {', '.join(PALETTE_CHOICES)}, got {name!r}"
        ) from None


def _rgb_pixels(image: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 colour pixels of an (h, w, 3|4) image (alpha ignored)."""
    return np.ascontiguousarray(image[..., :3]).reshape(-1, 3)


def sample_pixels(pixels: np.ndarray, limit: int = FIT_SAMPLE) -> np.ndarray:
    """At most `limit` pixels at a fixed stride: fitting cost stays bounded, deterministic."""
    if len(pixels) <= limit:
        return pixels
    return pixels[np.linspace(0, len(pixels) - 1, limit).astype(np.int64)]


def median_cut(pixels: np.ndarray, size: int) -> np.ndarray:
    """Up to `size` colours: split the box with the widest channel range at its median."""
    pixels = sample_pixels(np.asarray(pixels, dtype=np.uint8).reshape(-1, 3))

    def widest(box: np.ndarray) -> int:
        return int(np.ptp(box, axis=0).max()) if len(box) > 1 else 0

    boxes = [pixels]
    ranges = [widest(pixels)]
    while len(boxes) < size:
        best = int(np.argmax(ranges))
        if ranges[best] == 0:
            break  # every box is one colour: fewer distinct colours than `size`
        box = boxes.pop(best)
        ranges.pop(best)
        channel = int(np.argmax(np.ptp(box, axis=0)))
        values = box[:, channel]
        # Split at the median VALUE, never inside a run of equal values, so one colour
        # never ends up averaged into two boxes.
        median = np.sort(values)[len(values) // 2]
        low = values < median
        if not low.any():
            low = values <= median
        for part in (box[low], box[~low]):
            boxes.append(part)
            ranges.append(widest(part))
    means = [np.floor(b.astype(np.float64).mean(axis=0) + 0.5) for b in boxes]
    return np.array(means, dtype=np.uint8)


@njit(**NJIT_SERIAL)
def _assign_range(points, centres, labels, start, stop):
    """labels[i] = index of the nearest centre (squared Euclidean; lowest index on ties)."""
    for i in range(start, stop):
        best = 0
        best_d = np.inf
        for k in range(centres.shape[0]):
            d = 0.0
            for c in range(3):
                diff = points[i, c] - centres[k, c]
                d += diff * diff
            if d < best_d:
                best_d = d
                best = k
        labels[i] = best


@njit(**NJIT_PARALLEL)
def _assign_parallel(points, centres, labels, parts):
    n = points.shape[0]
    for b in prange(parts):
        _assign_range(points, centres, labels, b * n // parts, (b + 1) * n // parts)


def _assign(points: np.ndarray, centres: np.ndarray, labels: np.ndarray) -> None:
    """Nearest-centre labels; threads only when the work pays for waking them."""
    if len(points) * len(centres) >= PARALLEL_MIN_WORK:
        _assign_parallel(points, centres, labels, 4 * numba.get_num_threads())
    else:
        _assign_range(points, centres, labels, 0, len(points))


@njit(**NJIT_SERIAL)
def _update(points, labels, centres):
    """Move each centre to the mean of its points; an empty cluster keeps its centre."""
    k = centres.shape[0]
    sums = np.zeros((k, 3), np.float64)
    counts = np.zeros(k, np.int64)
    for i in range(points.shape[0]):
        j = labels[i]
        counts[j] += 1
        for c in range(3):
            sums[j, c] += points[i, c]
    moved = 0.0
    for j in range(k):
        if counts[j] > 0:
            for c in range(3):
                new = sums[j, c] / counts[j]
                moved = max(moved, abs(new - centres[j, c]))
                centres[j, c] = new
    return moved


def kmeans(pixels: np.ndarray, size: int, iterations: int = KMEANS_ITERATIONS) -> np.ndarray:
    """Up to `size` colours by Lloyd's k-means, seeded by median cut (deterministic)."""
    pixels = sample_pixels(np.asarray(pixels, dtype=np.uint8).reshape(-1, 3))
    centres = median_cut(pixels, size).astype(np.float64)
    points = pixels.astype(np.float64)
    labels = np.empty(len(points), np.int64)
    for _ in range(iterations):
        _assign(points, centres, labels)
        if _update(points, labels, centres) < 0.5:
            break
    return np.clip(np.floor(centres + 0.5), 0, 255).astype(np.uint8)


def fit_palette(small: np.ndarray, size: int, method: str = "kmeans") -> np.ndarray:
    """A (k <= size, 3) uint8 palette fitted to the colours of `small` (alpha ignored)."""
    if not 2 <= int(size) <= 256:
        raise FilterFailed(f"pixelate.palette_size must be between 2 and 256, got {size}")
    pixels = _rgb_pixels(small)
    if method == "kmeans":
        return kmeans(pixels, int(size))
    if method == "median_cut":
        return median_cut(pixels, int(size))
    raise FilterFailed(f"pixelate.method must be one of {', '.join(METHODS)}, got {method!r}")


@njit(**NJIT_SERIAL)
def _map_rows(small, palette, thresholds, strength, out, y0, y1):
    """Nearest palette colour per pixel of rows y0..y1, after adding
    strength * thresholds[y % n, x % n] (the ordered-dither bias; 0 for plain mapping)."""
    w, channels = small.shape[1], small.shape[2]
    n = thresholds.shape[0]
    pal = palette.astype(np.float32)
    for y in range(y0, y1):
        for x in range(w):
            bias = strength * thresholds[y % n, x % n]
            r = np.float32(small[y, x, 0]) + bias
            g = np.float32(small[y, x, 1]) + bias
            b = np.float32(small[y, x, 2]) + bias
            best = 0
            best_d = np.float32(np.inf)
            for k in range(pal.shape[0]):
                dr = r - pal[k, 0]
                dg = g - pal[k, 1]
                db = b - pal[k, 2]
                d = dr * dr + dg * dg + db * db
                if d < best_d:
                    best_d = d
                    best = k
            out[y, x, 0] = palette[best, 0]
            out[y, x, 1] = palette[best, 1]
            out[y, x, 2] = palette[best, 2]
            for c in range(3, channels):
                out[y, x, c] = small[y, x, c]


@njit(**NJIT_PARALLEL)
def _map_parallel(small, palette, thresholds, strength, out, parts):
    h = small.shape[0]
    for b in prange(parts):
        _map_rows(small, palette, thresholds, strength, out, b * h // parts, (b + 1) * h // parts)


def _map_nearest(small: np.ndarray, palette: np.ndarray, thresholds: np.ndarray,
                 strength: float, out: np.ndarray) -> None:
    parts = min(small.shape[0], 4 * numba.get_num_threads())
    if small.shape[0] * small.shape[1] * len(palette) >= PARALLEL_MIN_WORK and parts > 1:
        _map_parallel(small, palette, thresholds, np.float32(strength), out, parts)
    else:
        _map_rows(small, palette, thresholds, np.float32(strength), out, 0, small.shape[0])


def map_to_palette(small: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Each pixel replaced by its nearest palette colour (RGB distance); alpha kept."""
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
    """Dither amplitude: about one palette step along the grey axis.

    The mean distance from each palette colour to its nearest other colour, divided by
    sqrt(3) because the threshold is added to R, G and B alike (85 for grayscale-4).
    """
    pal = np.asarray(palette, dtype=np.float64).reshape(-1, 3)
    if len(pal) < 2:
        return 0.0
    dist = np.sqrt(((pal[:, None, :] - pal[None, :, :]) ** 2).sum(axis=-1))
    np.fill_diagonal(dist, np.inf)
    return float(dist.min(axis=1).mean() / np.sqrt(3.0))


def ordered_dither(small: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Bayer 8x8 ordered dithering to `palette`; alpha kept. Per pixel, so parallel."""
    small = np.ascontiguousarray(small)
    out = np.empty_like(small)
    palette = np.ascontiguousarray(palette, dtype=np.uint8)
    _map_nearest(small, palette, bayer_matrix(), bayer_strength(palette), out)
    return out


@njit(**NJIT_SERIAL)
def _floyd_steinberg(small, palette, out):
    h, w, channels = small.shape
    buf = np.empty((h + 1, w + 2, 3), np.float32)
    buf[:] = 0.0
    for y in range(h):
        for x in range(w):
            for c in range(3):
                buf[y, x + 1, c] = small[y, x, c]
    pal = palette.astype(np.float32)
    for y in range(h):
        for x in range(w):
            r = min(max(buf[y, x + 1, 0], np.float32(0.0)), np.float32(255.0))
            g = min(max(buf[y, x + 1, 1], np.float32(0.0)), np.float32(255.0))
            b = min(max(buf[y, x + 1, 2], np.float32(0.0)), np.float32(255.0))
            best = 0
            best_d = np.float32(np.inf)
            for k in range(pal.shape[0]):
                dr = r - pal[k, 0]
                dg = g - pal[k, 1]
                db = b - pal[k, 2]
                d = dr * dr + dg * dg + db * db
                if d < best_d:
                    best_d = d
                    best = k
            err = (r - pal[best, 0], g - pal[best, 1], b - pal[best, 2])
            for c in range(3):
                e = err[c]
                buf[y, x + 2, c] += e * np.float32(7.0 / 16.0)
                buf[y + 1, x, c] += e * np.float32(3.0 / 16.0)
                buf[y + 1, x + 1, c] += e * np.float32(5.0 / 16.0)
                buf[y + 1, x + 2, c] += e * np.float32(1.0 / 16.0)
                out[y, x, c] = palette[best, c]
            for c in range(3, channels):
                out[y, x, c] = small[y, x, c]


def floyd_steinberg(small: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Floyd-Steinberg error diffusion (raster order) to `palette`; alpha kept. Sequential."""
    small = np.ascontiguousarray(small)
    out = np.empty_like(small)
    _floyd_steinberg(small, np.ascontiguousarray(palette, dtype=np.uint8), out)
    return out


def outline(small: np.ndarray, palette: np.ndarray | None) -> np.ndarray:
    """Darken pixels on the dark side of strong luma edges (a 1-pixel dark outline).

    A pixel is outlined when a 4-neighbour is brighter by OUTLINE_THRESHOLD or more. It
    becomes the palette's darkest colour (so the result stays in the palette), or, with no
    palette, its colour scaled by OUTLINE_DARKEN.
    """
    rgb = small[..., :3].astype(np.float32)
    luma = rgb @ np.array([LUMA_R, LUMA_G, LUMA_B], np.float32)
    padded = np.pad(luma, 1, mode="edge")
    brighter = np.maximum.reduce([
        padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:],
    ]) - luma
    mask = brighter >= OUTLINE_THRESHOLD
    out = small.copy()
    if palette is not None and len(palette):
        pal_luma = palette.astype(np.float32) @ np.array([LUMA_R, LUMA_G, LUMA_B], np.float32)
        out[mask, :3] = palette[int(np.argmin(pal_luma))]
    else:
        out[mask, :3] = np.floor(rgb[mask] * OUTLINE_DARKEN + 0.5).astype(np.uint8)
    return out


def resolve_palette(small: np.ndarray, palette: str, palette_size: int, method: str) -> np.ndarray | None:
    """The palette to map to: None for "none", fitted for "adaptive", else the named one."""
    if palette == "none":
        return None
    if palette == "adaptive":
        return fit_palette(small, palette_size, method)
    return named_palette(palette)


def quantize_small(
    small: np.ndarray,
    *,
    palette: str = "adaptive",
    palette_size: int = 16,
    method: str = "kmeans",
    dither: str = "none",
    outline_edges: bool = False,
) -> np.ndarray:
    """The whole small-image stage of pixelate: palette, mapping/dithering, outline."""
    if dither not in DITHERS:
        raise FilterFailed(f"pixelate.dither must be one of {', '.join(DITHERS)}, got {dither!r}")
    small = np.ascontiguousarray(small)
    colours = resolve_palette(small, palette, palette_size, method)
    if colours is not None:
        if dither == "floyd-steinberg":
            small = floyd_steinberg(small, colours)
        elif dither == "bayer":
            small = ordered_dither(small, colours)
        else:
            small = map_to_palette(small, colours)
    if outline_edges:
        small = outline(small, colours)
    return small
