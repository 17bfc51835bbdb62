"""Point operations on the CPU: brightness, contrast (as lookup tables) and grayscale.

brightness and contrast are a 256-entry table per channel (alpha's is the identity), so the
kernel is one gather per byte whatever the formula; the table is built in float64 on the
host, which makes the rounding exact and identical to tests/naive.py.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from filters.cpu_common import (
    LUMA_B,
    LUMA_G,
    LUMA_R,
    NJIT_FAST,
    NJIT_PARALLEL,
    check_image,
    check_number,
    row_blocks,
)


@njit(**NJIT_PARALLEL)
def _apply_luts(src, luts, blocks, out):
    """out[y, x, c] = luts[c, src[y, x, c]] over row blocks."""
    channels = src.shape[2]
    for b in prange(blocks.shape[0] - 1):
        for y in range(blocks[b], blocks[b + 1]):
            s = src[y]
            d = out[y]
            if channels == 3:
                l0, l1, l2 = luts[0], luts[1], luts[2]
                for x in range(s.shape[0]):
                    d[x, 0] = l0[s[x, 0]]
                    d[x, 1] = l1[s[x, 1]]
                    d[x, 2] = l2[s[x, 2]]
            else:
                for x in range(s.shape[0]):
                    for c in range(channels):
                        d[x, c] = luts[c, s[x, c]]


def _lut_image(image: np.ndarray, colour_lut: np.ndarray) -> np.ndarray:
    """Apply one colour table to R, G, B and the identity to alpha."""
    c = image.shape[2]
    luts = np.empty((c, 256), np.uint8)
    luts[:3] = colour_lut
    if c == 4:
        luts[3] = np.arange(256, dtype=np.uint8)
    out = np.empty_like(image)
    _apply_luts(image, luts, row_blocks(image.shape[0], numba.get_num_threads()), out)
    return out


def _round_clip(values: np.ndarray) -> np.ndarray:
    """clip(round-half-up(values)) as uint8."""
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)


def brightness(image: np.ndarray, *, factor: float = 1.2) -> np.ndarray:
    """out = clip(round(x * factor)) on R, G, B; alpha untouched."""
    image = check_image(image, "brightness")
    factor = check_number(factor, "brightness.factor", 0.0, 10.0)
    return _lut_image(image, _round_clip(np.arange(256, dtype=np.float64) * factor))


@njit(**NJIT_FAST)
def _luma_sum(src, blocks):
    """Sum of float luma over the image (per-block float64 partial sums)."""
    partial = np.zeros(blocks.shape[0] - 1, np.float64)
    lr, lg, lb = np.float32(LUMA_R), np.float32(LUMA_G), np.float32(LUMA_B)
    for b in prange(blocks.shape[0] - 1):
        total = 0.0
        for y in range(blocks[b], blocks[b + 1]):
            s = src[y]
            row = np.float32(0.0)
            for x in range(s.shape[0]):
                row += (lr * np.float32(s[x, 0]) + lg * np.float32(s[x, 1])
                        + lb * np.float32(s[x, 2]))
            total += row
        partial[b] = total
    return partial.sum()


def mean_luma(image: np.ndarray) -> float:
    """Mean of 0.299R + 0.587G + 0.114B over the whole image (float, not rounded)."""
    image = check_image(image, "contrast")
    h, w = image.shape[:2]
    return float(_luma_sum(image, row_blocks(h, numba.get_num_threads()))) / (h * w)


def contrast(image: np.ndarray, *, factor: float = 1.2) -> np.ndarray:
    """out = clip(round((x - m) * factor + m)), m = mean luma of the image; alpha untouched."""
    image = check_image(image, "contrast")
    factor = check_number(factor, "contrast.factor", 0.0, 10.0)
    m = mean_luma(image)
    return _lut_image(image, _round_clip((np.arange(256, dtype=np.float64) - m) * factor + m))


@njit(**NJIT_FAST)
def _grayscale(src, blocks, out):
    """Luma rounded half up, replicated to R, G, B; alpha copied."""
    channels = src.shape[2]
    lr, lg, lb = np.float32(LUMA_R), np.float32(LUMA_G), np.float32(LUMA_B)
    for b in prange(blocks.shape[0] - 1):
        for y in range(blocks[b], blocks[b + 1]):
            s = src[y]
            d = out[y]
            for x in range(s.shape[0]):
                v = (lr * np.float32(s[x, 0]) + lg * np.float32(s[x, 1])
                     + lb * np.float32(s[x, 2]))
                g = np.uint8(min(v, np.float32(255.0)) + np.float32(0.5))
                d[x, 0] = g
                d[x, 1] = g
                d[x, 2] = g
                for c in range(3, channels):
                    d[x, c] = s[x, c]


def grayscale(image: np.ndarray) -> np.ndarray:
    """Luma 0.299R + 0.587G + 0.114B (Pillow's "L", within 1) on R, G, B; alpha kept."""
    image = check_image(image, "grayscale")
    out = np.empty_like(image)
    _grayscale(image, row_blocks(image.shape[0], numba.get_num_threads()), out)
    return out
