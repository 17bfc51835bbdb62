"""Point operations on the CPU: brightness, contrast (as lookup tables) and grayscale.

brightness and contrast are one 256-entry table for R, G, B (alpha copied), so the kernel
is one gather per byte whatever the formula; the table is built in float64 on the
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
def _apply_lut(src, lut, channels, blocks, out):
    """out = lut[src] on R, G, B; alpha (every 4th byte when channels == 4) copied.

    src/out are (H, W*C) row views: constant strides let LLVM unroll and schedule.
    """
    n = src.shape[1]
    for b in prange(blocks.shape[0] - 1):
        for y in range(blocks[b], blocks[b + 1]):
            s = src[y]
            d = out[y]
            if channels == 3:
                for j in range(n):
                    d[j] = lut[s[j]]
            else:
                for i in range(n // 4):
                    p = 4 * i
                    d[p] = lut[s[p]]
                    d[p + 1] = lut[s[p + 1]]
                    d[p + 2] = lut[s[p + 2]]
                    d[p + 3] = s[p + 3]


def _lut_image(image: np.ndarray, colour_lut: np.ndarray) -> np.ndarray:
    """Apply one 256-entry table to R, G, B; alpha untouched."""
    h, w, c = image.shape
    out = np.empty_like(image)
    _apply_lut(image.reshape(h, w * c), colour_lut, c, row_blocks(h, numba.get_num_threads()),
               out.reshape(h, w * c))
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
def _luma_sum(src, channels, blocks):
    """Sum of float luma over (H, W*C) rows (float32 per row, float64 across rows)."""
    partial = np.zeros(blocks.shape[0] - 1, np.float64)
    lr, lg, lb = np.float32(LUMA_R), np.float32(LUMA_G), np.float32(LUMA_B)
    n = src.shape[1] // channels
    for b in prange(blocks.shape[0] - 1):
        total = 0.0
        for y in range(blocks[b], blocks[b + 1]):
            s = src[y]
            row = np.float32(0.0)
            if channels == 3:
                for i in range(n):
                    row += (lr * np.float32(s[3 * i]) + lg * np.float32(s[3 * i + 1])
                            + lb * np.float32(s[3 * i + 2]))
            else:
                for i in range(n):
                    row += (lr * np.float32(s[4 * i]) + lg * np.float32(s[4 * i + 1])
                            + lb * np.float32(s[4 * i + 2]))
            total += row
        partial[b] = total
    return partial.sum()


def mean_luma(image: np.ndarray) -> float:
    """Mean of 0.299R + 0.587G + 0.114B over the whole image (float, not rounded)."""
    image = check_image(image, "contrast")
    h, w, c = image.shape
    total = _luma_sum(image.reshape(h, w * c), c, row_blocks(h, numba.get_num_threads()))
    return float(total) / (h * w)


def contrast(image: np.ndarray, *, factor: float = 1.2) -> np.ndarray:
    """out = clip(round((x - m) * factor + m)), m = mean luma of the image; alpha untouched."""
    image = check_image(image, "contrast")
    factor = check_number(factor, "contrast.factor", 0.0, 10.0)
    m = mean_luma(image)
    return _lut_image(image, _round_clip((np.arange(256, dtype=np.float64) - m) * factor + m))


@njit(**NJIT_FAST)
def _grayscale(src, channels, blocks, out):
    """Luma rounded half up, replicated to R, G, B; alpha copied. (H, W*C) row views:
    with the stride a constant (3 or 4) LLVM vectorises the interleaved loads (5x)."""
    lr, lg, lb = np.float32(LUMA_R), np.float32(LUMA_G), np.float32(LUMA_B)
    n = src.shape[1] // channels
    for b in prange(blocks.shape[0] - 1):
        for y in range(blocks[b], blocks[b + 1]):
            s = src[y]
            d = out[y]
            if channels == 3:
                for i in range(n):
                    v = (lr * np.float32(s[3 * i]) + lg * np.float32(s[3 * i + 1])
                         + lb * np.float32(s[3 * i + 2]))
                    g = np.uint8(min(v, np.float32(255.0)) + np.float32(0.5))
                    d[3 * i] = g
                    d[3 * i + 1] = g
                    d[3 * i + 2] = g
            else:
                for i in range(n):
                    v = (lr * np.float32(s[4 * i]) + lg * np.float32(s[4 * i + 1])
                         + lb * np.float32(s[4 * i + 2]))
                    g = np.uint8(min(v, np.float32(255.0)) + np.float32(0.5))
                    d[4 * i] = g
                    d[4 * i + 1] = g
                    d[4 * i + 2] = g
                    d[4 * i + 3] = s[4 * i + 3]


def grayscale(image: np.ndarray) -> np.ndarray:
    """Luma 0.299R + 0.587G + 0.114B (Pillow's "L", within 1) on R, G, B; alpha kept."""
    image = check_image(image, "grayscale")
    h, w, c = image.shape
    out = np.empty_like(image)
    _grayscale(image.reshape(h, w * c), c, row_blocks(h, numba.get_num_threads()),
               out.reshape(h, w * c))
    return out
