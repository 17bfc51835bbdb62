"""GPU block means: one thread per output cell averages an fy x fx block of the input.

Shared by pixelate (square blocks) and resize (an exact integer-factor area shrink, where
a box mean is exactly what INTER_AREA computes). Integer sums with round half up, so both
backends agree bit for bit; partial blocks at the right and bottom edges average the
pixels they have. Every channel, alpha included, is averaged.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from filters.gpu_launch import device_like, launch_2d


@cuda.jit
def _block_mean_kernel(src, fy, fx, small):
    """small[cy, cx] = round-half-up mean of src[cy*fy : +fy, cx*fx : +fx] (int64 sums)."""
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    h, w, c = src.shape
    sh, sw, _ = small.shape
    for cy in range(y0, sh, sy):
        ya = cy * fy
        yb = min(ya + fy, h)
        for cx in range(x0, sw, sx):
            xa = cx * fx
            xb = min(xa + fx, w)
            count = (yb - ya) * (xb - xa)
            for ch in range(c):
                total = 0
                for y in range(ya, yb):
                    for x in range(xa, xb):
                        total += np.int32(src[y, x, ch])
                small[cy, cx, ch] = np.uint8((2 * total + count) // (2 * count))


def block_mean(image, fy: int, fx: int):
    """The (ceil(H/fy), ceil(W/fx), C) device image of block means."""
    h, w, c = image.shape
    sh, sw = -(-h // fy), -(-w // fx)
    small = device_like(sh, sw, c)
    blocks, threads = launch_2d(sh, sw)
    _block_mean_kernel[blocks, threads](image, np.int32(fy), np.int32(fx), small)
    return small
