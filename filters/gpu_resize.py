"""GPU resize: nearest, bilinear, area and lanczos as one separable resampler.

The host builds one (indices, weights) table per axis (filters/gpu_resample.py); a
horizontal pass writes a float32 (H, tw, C) intermediate in device memory and a
vertical pass produces the uint8 (th, tw, C) result. Nearest skips the arithmetic: a
single gather kernel. The target size comes from filters.geometry.resize_target, the
same function the CPU kernel and the API use. Alpha is resampled with the colour.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from filters.geometry import resize_target
from filters.gpu_launch import device_like, launch_2d, to_u8
from filters.gpu_resample import nearest_table, table_for


@cuda.jit
def _gather_kernel(src, rows, cols, dst):
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    th, tw, c = dst.shape
    for y in range(y0, th, sy):
        ys = rows[y, 0]
        for x in range(x0, tw, sx):
            xs = cols[x, 0]
            for ch in range(c):
                dst[y, x, ch] = src[ys, xs, ch]


@cuda.jit
def _resample_h_kernel(src, idx, wts, tmp):
    """tmp[y, x, c] = sum_k wts[x, k] * src[y, idx[x, k], c]."""
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    h, tw, c = tmp.shape
    taps = idx.shape[1]
    for y in range(y0, h, sy):
        for x in range(x0, tw, sx):
            for ch in range(c):
                acc = np.float32(0.0)
                for k in range(taps):
                    acc += wts[x, k] * np.float32(src[y, idx[x, k], ch])
                tmp[y, x, ch] = acc


@cuda.jit
def _resample_v_kernel(tmp, idx, wts, dst):
    """dst[y, x, c] = u8(sum_k wts[y, k] * tmp[idx[y, k], x, c])."""
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    th, tw, c = dst.shape
    taps = idx.shape[1]
    for y in range(y0, th, sy):
        for x in range(x0, tw, sx):
            for ch in range(c):
                acc = np.float32(0.0)
                for k in range(taps):
                    acc += wts[y, k] * tmp[idx[y, k], x, ch]
                dst[y, x, ch] = to_u8(acc)


def resize_to(image, th: int, tw: int, interpolation: str = "auto"):
    """Resample a device image to exactly (th, tw)."""
    h, w, c = image.shape
    out = device_like(th, tw, c)
    blocks, threads = launch_2d(th, tw)
    if interpolation == "nearest":
        rows = cuda.to_device(nearest_table(h, th)[0])
        cols = cuda.to_device(nearest_table(w, tw)[0])
        _gather_kernel[blocks, threads](image, rows, cols, out)
        return out
    if interpolation == "auto":
        interpolation = "area" if th * tw < h * w else "bilinear"
    hidx, hwts = (cuda.to_device(a) for a in table_for(interpolation, w, tw))
    vidx, vwts = (cuda.to_device(a) for a in table_for(interpolation, h, th))
    tmp = device_like(h, tw, c, dtype=np.float32)
    hblocks, hthreads = launch_2d(h, tw)
    _resample_h_kernel[hblocks, hthreads](image, hidx, hwts, tmp)
    _resample_v_kernel[blocks, threads](tmp, vidx, vwts, out)
    return out


def resize(image, *, width: int | None = None, height: int | None = None,
           scale: float | None = None, interpolation: str = "auto"):
    """Resize to resize_target(...) (raises FilterFailed above the megapixel limit)."""
    h, w, _ = image.shape
    th, tw = resize_target(h, w, width=width, height=height, scale=scale)
    return resize_to(image, th, tw, interpolation)
