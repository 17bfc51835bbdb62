"""Integer block means: pixelate's block averaging and resize's exact integer-factor area.

out[by, bx] = round-half-up(mean of the fy x fx source block), with partial blocks at the
right/bottom edges averaging the pixels they have. Integer sums are exact, so the result
equals OpenCV's INTER_AREA on whole blocks.

Why this shape (measured on 3840x2160): summing fy source rows into a uint16 row is a
vectorised loop; the horizontal reduction runs tap-outer (`for k: for bx:`) with channels
unrolled, because a per-pixel `for x in range(x0, x1)` loop costs ~13 cycles per output
pixel in loop overhead; power-of-two block areas divide by a shift.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from filters.cpu_common import NJIT_FAST, NJIT_INNER

MAX_BLOCK_ROWS = 256  # uint16 row sums: 256 * 255 < 65536


@njit(**NJIT_INNER)
def _sum_full_blocks(acc, fx, full, channels, s):
    """s[bx*C + c] = sum over k < fx of acc[(bx*fx + k)*C + c], for bx < full."""
    n = full * channels
    if fx == 1:
        for j in range(n):
            s[j] = acc[j]
        return
    if fx == 2 and channels == 3:
        for bx in range(full):
            p = bx * 6
            q = bx * 3
            s[q] = np.uint32(acc[p]) + acc[p + 3]
            s[q + 1] = np.uint32(acc[p + 1]) + acc[p + 4]
            s[q + 2] = np.uint32(acc[p + 2]) + acc[p + 5]
        return
    for j in range(n):
        s[j] = 0
    if channels == 3:
        for k in range(fx):
            for bx in range(full):
                p = (bx * fx + k) * 3
                q = bx * 3
                s[q] += acc[p]
                s[q + 1] += acc[p + 1]
                s[q + 2] += acc[p + 2]
    elif channels == 4:
        for k in range(fx):
            for bx in range(full):
                p = (bx * fx + k) * 4
                q = bx * 4
                s[q] += acc[p]
                s[q + 1] += acc[p + 1]
                s[q + 2] += acc[p + 2]
                s[q + 3] += acc[p + 3]
    else:
        for k in range(fx):
            for bx in range(full):
                for c in range(channels):
                    s[bx * channels + c] += acc[(bx * fx + k) * channels + c]


@njit(**NJIT_FAST)
def _block_mean(src, fy, fx, blocks, out):
    """Block means of a (H, W, C) uint8 image into out (ceil(H/fy), ceil(W/fx), C)."""
    h, w, channels = src.shape
    row_len = w * channels
    flat = src.reshape(h, row_len)
    sw = out.shape[1]
    full = w // fx
    for b in prange(blocks.shape[0] - 1):
        acc = np.empty(row_len, np.uint16)
        s = np.empty(sw * channels, np.uint32)
        for by in range(blocks[b], blocks[b + 1]):
            y0 = by * fy
            y1 = min(y0 + fy, h)
            first = flat[y0]
            if y1 - y0 >= 2:
                second = flat[y0 + 1]
                for j in range(row_len):
                    acc[j] = np.uint16(first[j]) + np.uint16(second[j])
            else:
                for j in range(row_len):
                    acc[j] = np.uint16(first[j])
            for y in range(y0 + 2, y1):
                row = flat[y]
                for j in range(row_len):
                    acc[j] += np.uint16(row[j])
            rows = y1 - y0
            _sum_full_blocks(acc, fx, full, channels, s)
            dst = out[by].reshape(sw * channels)
            count = rows * fx
            n = full * channels
            if count & (count - 1) == 0:
                shift = 0
                while (1 << shift) < count:
                    shift += 1
                half = np.uint32(count // 2)
                for j in range(n):
                    dst[j] = np.uint8((s[j] + half) >> shift)
            else:
                inv = 1.0 / count
                for j in range(n):
                    # +1e-7: an exact .5 stays .5 despite 1/count's rounding (ties are
                    # >= 1/(2*count) away from any other value, far above 1e-7).
                    dst[j] = np.uint8(s[j] * inv + 0.5000001)
            if full < sw:  # partial block at the right edge
                x0 = full * fx
                inv = 1.0 / (rows * (w - x0))
                for c in range(channels):
                    t = np.uint32(0)
                    for x in range(x0, w):
                        t += acc[x * channels + c]
                    dst[full * channels + c] = np.uint8(t * inv + 0.5000001)


def block_mean(image: np.ndarray, fy: int, fx: int, blocks: np.ndarray) -> np.ndarray:
    """(ceil(H/fy), ceil(W/fx), C) block means; `blocks` splits the OUTPUT rows."""
    h, w, c = image.shape
    out = np.empty((-(-h // fy), -(-w // fx), c), np.uint8)
    _block_mean(image, fy, fx, blocks, out)
    return out
