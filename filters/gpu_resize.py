"""GPU resize: nearest, bilinear, area and lanczos as one separable resampler.

The host builds one (indices, weights) tap table per axis with the CPU kernel's own
`filters.cpu_resize.axis_taps`, so both backends share one definition of every
interpolation (conventions in that module: nearest = floor((i + 0.5) * scale), bilinear =
OpenCV INTER_LINEAR, area = exact box coverage, lanczos = Pillow's Lanczos-3). A
horizontal pass writes a float32 (H, tw, C) intermediate in device memory and a
vertical pass produces the uint8 (th, tw, C) result. Nearest skips the arithmetic: a
single gather kernel, and an exact integer-factor area shrink is one block-mean kernel
(integer sums, bit-identical to the CPU's). The target size comes from filters.geometry.resize_target, the
same function the CPU kernel and the API use. Alpha is resampled with the colour.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import cuda

from filters.geometry import resize_target
from filters.gpu_blocks import block_mean
from filters.gpu_launch import check_device_image, device_like, launch_2d, to_u8
from filters.cpu_resize import INTERPOLATIONS, axis_taps
from filters.errors import FilterFailed


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


@lru_cache(maxsize=64)
def _taps_on_device(n_in: int, n_out: int, interpolation: str):
    """One axis's tap table on the device, cached: building it is a Python loop over the
    output size (milliseconds, more than the kernels) and a worker sees the same sizes
    again and again. Tables are read-only, so sharing them is safe."""
    idx, wts = axis_taps(n_in, n_out, interpolation)
    return cuda.to_device(idx.astype(np.int32)), cuda.to_device(wts.astype(np.float32))


def resize_to(image, th: int, tw: int, interpolation: str = "auto"):
    """Resample a device image to exactly (th, tw)."""
    h, w, c = image.shape
    out = device_like(th, tw, c)
    if (th, tw) == (h, w) and interpolation in ("auto", "nearest", "area"):
        out.copy_to_device(image)  # identity, as on the CPU
        return out
    if interpolation in ("auto", "area") and h % th == 0 and w % tw == 0:
        return block_mean(image, h // th, w // tw)  # exact integer box shrink, as the CPU
    blocks, threads = launch_2d(th, tw)
    vidx, vwts = _taps_on_device(h, th, interpolation)
    hidx, hwts = _taps_on_device(w, tw, interpolation)
    if interpolation == "nearest":
        _gather_kernel[blocks, threads](image, vidx, hidx, out)
        return out
    tmp = device_like(h, tw, c, dtype=np.float32)
    hblocks, hthreads = launch_2d(h, tw)
    _resample_h_kernel[hblocks, hthreads](image, hidx, hwts, tmp)
    _resample_v_kernel[blocks, threads](tmp, vidx, vwts, out)
    return out


def resize(image, *, width: int | None = None, height: int | None = None,
           scale: float | None = None, interpolation: str = "auto"):
    """Resize to resize_target(...) (raises FilterFailed above the megapixel limit)."""
    if interpolation not in INTERPOLATIONS:
        raise FilterFailed(
            f"resize.interpolation must be one of {', '.join(INTERPOLATIONS)}, "
            f"got {interpolation!r}"
        )
    h, w, _ = check_device_image(image, "resize").shape
    th, tw = resize_target(h, w, width, height, scale)
    return resize_to(image, th, tw, interpolation)
