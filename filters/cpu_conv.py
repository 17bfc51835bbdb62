"""Neighbourhood filters on the CPU: Gaussian blur, unsharp-mask sharpen, Sobel edges.

Why this shape: the straightforward kernel (per pixel, per tap, column walks) was 3.4x
slower than OpenCV. Here each thread owns a block of rows; for each output row the
vertical pass sums whole source rows into a float32 row buffer (contiguous, vectorised),
then the horizontal pass runs over that buffer as one flat (W*C) loop per tap - taps are
symmetric, so pairs share a multiply. Sharpen fuses blur and combine in the same loop.
Alpha is treated like the colour channels (blurred/sharpened the same way).
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
    check_image,
    check_number,
    gaussian_taps,
    reflect_table,
    row_blocks,
)
from filters.errors import FilterFailed


# Columns per chunk: a chunk of the row buffer and its taps stay in L1/L2 across taps.
CHUNK = 2048


@njit(**NJIT_FAST)
def _gauss_rows(src, taps, ytab, xtab, channels, amount, unsharp, blocks, out):
    """Separable Gaussian on (H, W*C) rows; with `unsharp`, out = x + amount*(x - blur).

    Loops index slices (not base + offset arithmetic): LLVM then vectorises them; the
    offset form measured 7x slower in the horizontal pass.
    """
    h, row_len = src.shape
    half = taps.shape[0] // 2
    width = row_len // channels
    off = half * channels
    wc = taps[half]
    for b in prange(blocks.shape[0] - 1):
        vbuf = np.empty(row_len + 2 * off, np.float32)
        acc = np.empty(row_len, np.float32)
        for y in range(blocks[b], blocks[b + 1]):
            centre = src[ytab[y + half]]
            # Vertical pass: symmetric pairs of whole rows into the padded row buffer.
            for c0 in range(0, row_len, CHUNK):
                c1 = min(c0 + CHUNK, row_len)
                inner = vbuf[off + c0: off + c1]
                mid = centre[c0:c1]
                for j in range(c1 - c0):
                    inner[j] = wc * np.float32(mid[j])
                for k in range(half):
                    top = src[ytab[y + k]][c0:c1]
                    bottom = src[ytab[y + 2 * half - k]][c0:c1]
                    wk = taps[k]
                    for j in range(c1 - c0):
                        inner[j] += wk * (np.float32(top[j]) + np.float32(bottom[j]))
            # Reflect-101 borders of the row buffer (a few pixels each side).
            for i in range(half):
                sl = off + xtab[i] * channels
                sr = off + xtab[width + half + i] * channels
                for c in range(channels):
                    vbuf[i * channels + c] = vbuf[sl + c]
                    vbuf[(width + half + i) * channels + c] = vbuf[sr + c]
            # Horizontal pass: one flat loop per tap pair (taps are C elements apart).
            dst = out[y]
            for c0 in range(0, row_len, CHUNK):
                c1 = min(c0 + CHUNK, row_len)
                a0 = acc[c0:c1]
                inner = vbuf[off + c0: off + c1]
                for j in range(c1 - c0):
                    a0[j] = wc * inner[j]
                for k in range(half):
                    wk = taps[k]
                    left = vbuf[k * channels + c0: k * channels + c1]
                    right = vbuf[(2 * half - k) * channels + c0: (2 * half - k) * channels + c1]
                    for j in range(c1 - c0):
                        a0[j] += wk * (left[j] + right[j])
                d = dst[c0:c1]
                if unsharp:
                    mid = centre[c0:c1]
                    for j in range(c1 - c0):
                        x = np.float32(mid[j])
                        v = x + amount * (x - a0[j])
                        v = min(max(v, np.float32(0.0)), np.float32(255.0))
                        d[j] = np.uint8(v + np.float32(0.5))
                else:
                    for j in range(c1 - c0):
                        v = min(max(a0[j], np.float32(0.0)), np.float32(255.0))
                        d[j] = np.uint8(v + np.float32(0.5))


def _gaussian(image: np.ndarray, sigma: float, amount: float, unsharp: bool) -> np.ndarray:
    h, w, c = image.shape
    taps = gaussian_taps(sigma)
    half = taps.shape[0] // 2
    out = np.empty_like(image)
    _gauss_rows(
        image.reshape(h, w * c), taps, reflect_table(h, half), reflect_table(w, half),
        c, np.float32(amount), unsharp, row_blocks(h, numba.get_num_threads()),
        out.reshape(h, w * c),
    )
    return out


def blur(image: np.ndarray, *, radius: float = 2.0) -> np.ndarray:
    """Gaussian blur, sigma = radius, half-width ceil(3*sigma), border reflect-101.

    All channels, alpha included, are blurred the same way.
    """
    image = check_image(image, "blur")
    radius = check_number(radius, "blur.radius", 0.1, 50.0)
    return _gaussian(image, radius, 0.0, False)


def sharpen(image: np.ndarray, *, amount: float = 1.0, radius: float = 1.0) -> np.ndarray:
    """Unsharp mask: clip(x + amount*(x - gaussian(x, radius))); alpha treated like colour."""
    image = check_image(image, "sharpen")
    amount = check_number(amount, "sharpen.amount", 0.0, 10.0)
    radius = check_number(radius, "sharpen.radius", 0.1, 20.0)
    return _gaussian(image, radius, amount, True)


@njit(**NJIT_FAST)
def _sobel_rows(src, ytab, threshold, blocks, out):
    """Sobel 3x3 magnitude of float32 luma; threshold < 0 means "no threshold"."""
    h, w, channels = src.shape
    lr, lg, lb = np.float32(LUMA_R), np.float32(LUMA_G), np.float32(LUMA_B)
    for b in prange(blocks.shape[0] - 1):
        # Luma of rows above / at / below; s = smoothed vertically, d = vertical difference,
        # each padded by one reflect-101 pixel per side so the x loop has no branches.
        lum = np.empty((3, w), np.float32)
        s = np.empty(w + 2, np.float32)
        d = np.empty(w + 2, np.float32)
        for y in range(blocks[b], blocks[b + 1]):
            for r in range(3):
                row = src[ytab[y + r]]
                lrow = lum[r]
                for x in range(w):
                    lrow[x] = (lr * np.float32(row[x, 0]) + lg * np.float32(row[x, 1])
                               + lb * np.float32(row[x, 2]))
            up, mid, down = lum[0], lum[1], lum[2]
            for x in range(w):
                s[x + 1] = up[x] + np.float32(2.0) * mid[x] + down[x]
                d[x + 1] = down[x] - up[x]
            if w == 1:
                s[0] = s[1]
                s[2] = s[1]
                d[0] = d[1]
                d[2] = d[1]
            else:
                s[0] = s[2]
                d[0] = d[2]
                s[w + 1] = s[w - 1]
                d[w + 1] = d[w - 1]
            src_row = src[y]
            dst = out[y]
            for x in range(w):
                gx = s[x + 2] - s[x]
                gy = d[x] + np.float32(2.0) * d[x + 1] + d[x + 2]
                mag = np.sqrt(gx * gx + gy * gy)
                if threshold >= 0:
                    v = np.uint8(255) if mag >= threshold else np.uint8(0)
                else:
                    v = np.uint8(min(mag, np.float32(255.0)) + np.float32(0.5))
                dst[x, 0] = v
                dst[x, 1] = v
                dst[x, 2] = v
                for c in range(3, channels):
                    dst[x, c] = src_row[x, c]


def edges(image: np.ndarray, *, threshold: int | None = None) -> np.ndarray:
    """Sobel magnitude of luma (reflect-101), clipped to 255, or binary with a threshold.

    The result is replicated to R, G and B; alpha is kept.
    """
    image = check_image(image, "edges")
    if threshold is None:
        limit = np.float32(-1.0)
    else:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer)):
            raise FilterFailed(f"edges.threshold must be an integer or null, got {threshold!r}")
        if not 0 <= threshold <= 255:
            raise FilterFailed(f"edges.threshold must be between 0 and 255, got {threshold}")
        limit = np.float32(threshold)
    h = image.shape[0]
    out = np.empty_like(image)
    _sobel_rows(image, reflect_table(h, 1), limit, row_blocks(h, numba.get_num_threads()), out)
    return out
