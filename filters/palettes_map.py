"""Mapping the small image to a palette: nearest colour, ordered (Bayer) and
Floyd-Steinberg dithering, and the dark outline.

Floyd-Steinberg is sequential by nature (each pixel's error feeds the next), so it runs
here on the small image, for the GPU path too. Nearest-colour search uses float32 squared
RGB distance with the lowest index winning ties (the GPU kernel mirrors this arithmetic).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from filters.cpu_common import (
    LUMA_B,
    LUMA_G,
    LUMA_R,
    NJIT_PARALLEL,
    NJIT_SERIAL,
    PARALLEL_MIN_WORK,
)

DITHERS = ("none", "floyd-steinberg", "bayer")
OUTLINE_THRESHOLD = 64.0       # luma step to a brighter 4-neighbour that draws an outline
OUTLINE_DARKEN = 0.35          # without a palette, outline pixels are scaled by this
BAYER_SIZE = 8


def nearest_colour(pal, r, g, b):
    """Index of the palette colour nearest to (r, g, b): float32 squared RGB distance,
    lowest index winning ties. Plain Python compiled twice, for the CPU here and as a
    CUDA device function in filters.gpu_pixelate, so both backends pick the same colour."""
    best = 0
    best_d = np.float32(3.0e38)
    for k in range(pal.shape[0]):
        dr = r - np.float32(pal[k, 0])
        dg = g - np.float32(pal[k, 1])
        db = b - np.float32(pal[k, 2])
        d = dr * dr + dg * dg + db * db
        if d < best_d:
            best_d = d
            best = k
    return best


_nearest = njit(inline="always", cache=True)(nearest_colour)


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
            best = _nearest(pal, r, g, b)
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
            best = _nearest(pal, r, g, b)
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
