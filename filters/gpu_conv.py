"""GPU neighbourhood filters: Gaussian blur, unsharp-mask sharpen, Sobel edges.

The Gaussian is separable: a horizontal pass writes a float32 intermediate in device
memory, a vertical pass reads it and stores uint8 (blur) or fuses the unsharp mask
(sharpen: out = x + amount * (x - gaussian(x))), so sharpen costs the same two passes.
The weights (half-width ceil(3 * sigma), normalised) are computed on the host once per
call (filters.cpu_common.gaussian_taps, shared with the CPU kernel) and copied to the
device. Borders are OpenCV's reflect-101, as on the CPU.
"""
from __future__ import annotations

import math

import numpy as np
from numba import cuda

from filters.cpu_common import check_number, gaussian_taps
from filters.errors import FilterFailed
from filters.gpu_launch import (
    check_device_image,
    device_like,
    launch_2d,
    luma,
    reflect101,
    to_u8,
)


# The Gaussian passes compute each tap's source index once and accumulate every channel
# from it (C is 3 or 4; the alpha branch is uniform across a launch), instead of
# recomputing the reflected index per channel.
@cuda.jit
def _hpass_kernel(src, weights, tmp):
    """tmp[y, x, c] = sum_k w[k] * src[y, reflect(x + k - half), c] (float32)."""
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    h, w, c = src.shape
    taps = weights.shape[0]
    half = taps // 2
    for y in range(y0, h, sy):
        for x in range(x0, w, sx):
            a0 = np.float32(0.0)
            a1 = np.float32(0.0)
            a2 = np.float32(0.0)
            a3 = np.float32(0.0)
            for k in range(taps):
                xx = reflect101(x + k - half, w)
                wk = weights[k]
                a0 += wk * np.float32(src[y, xx, 0])
                a1 += wk * np.float32(src[y, xx, 1])
                a2 += wk * np.float32(src[y, xx, 2])
                if c == 4:
                    a3 += wk * np.float32(src[y, xx, 3])
            tmp[y, x, 0] = a0
            tmp[y, x, 1] = a1
            tmp[y, x, 2] = a2
            if c == 4:
                tmp[y, x, 3] = a3


@cuda.jit(device=True, inline=True)
def _vertical_sums(tmp, weights, y, x, h, c):
    """(sum_k w[k] * tmp[reflect(y + k - half), x, ch] for ch in 0..3); a3 = 0 for RGB."""
    taps = weights.shape[0]
    half = taps // 2
    a0 = np.float32(0.0)
    a1 = np.float32(0.0)
    a2 = np.float32(0.0)
    a3 = np.float32(0.0)
    for k in range(taps):
        yy = reflect101(y + k - half, h)
        wk = weights[k]
        a0 += wk * tmp[yy, x, 0]
        a1 += wk * tmp[yy, x, 1]
        a2 += wk * tmp[yy, x, 2]
        if c == 4:
            a3 += wk * tmp[yy, x, 3]
    return a0, a1, a2, a3


@cuda.jit
def _vpass_blur_kernel(tmp, weights, dst):
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    h, w, c = tmp.shape
    for y in range(y0, h, sy):
        for x in range(x0, w, sx):
            a0, a1, a2, a3 = _vertical_sums(tmp, weights, y, x, h, c)
            dst[y, x, 0] = to_u8(a0)
            dst[y, x, 1] = to_u8(a1)
            dst[y, x, 2] = to_u8(a2)
            if c == 4:
                dst[y, x, 3] = to_u8(a3)


@cuda.jit(device=True, inline=True)
def _unsharp(x, blurred, amount):
    v = np.float32(x)
    return to_u8(v + amount * (v - blurred))


@cuda.jit
def _vpass_unsharp_kernel(tmp, weights, src, amount, dst):
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    h, w, c = tmp.shape
    for y in range(y0, h, sy):
        for x in range(x0, w, sx):
            a0, a1, a2, a3 = _vertical_sums(tmp, weights, y, x, h, c)
            dst[y, x, 0] = _unsharp(src[y, x, 0], a0, amount)
            dst[y, x, 1] = _unsharp(src[y, x, 1], a1, amount)
            dst[y, x, 2] = _unsharp(src[y, x, 2], a2, amount)
            if c == 4:
                dst[y, x, 3] = _unsharp(src[y, x, 3], a3, amount)


@cuda.jit
def _sobel_kernel(src, dst, threshold):
    """Sobel 3x3 on luma, reflect-101; threshold < 0 means "magnitude", else binary."""
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    h, w, c = src.shape
    for y in range(y0, h, sy):
        ym = reflect101(y - 1, h)
        yp = reflect101(y + 1, h)
        for x in range(x0, w, sx):
            xm = reflect101(x - 1, w)
            xp = reflect101(x + 1, w)
            gx = np.float32(0.0)
            gy = np.float32(0.0)
            for dy in range(3):
                yy = ym if dy == 0 else (y if dy == 1 else yp)
                wy = np.float32(1.0) if dy != 1 else np.float32(2.0)
                sy_sign = np.float32(dy - 1)
                for dx in range(3):
                    xx = xm if dx == 0 else (x if dx == 1 else xp)
                    wx = np.float32(1.0) if dx != 1 else np.float32(2.0)
                    sx_sign = np.float32(dx - 1)
                    l = luma(np.float32(src[yy, xx, 0]), np.float32(src[yy, xx, 1]),
                             np.float32(src[yy, xx, 2]))
                    gx += sx_sign * wy * l
                    gy += sy_sign * wx * l
            mag = math.sqrt(gx * gx + gy * gy)
            if threshold >= 0:
                out = np.uint8(255) if mag >= threshold else np.uint8(0)
            else:
                out = to_u8(mag)
            dst[y, x, 0] = out
            dst[y, x, 1] = out
            dst[y, x, 2] = out
            for ch in range(3, c):
                dst[y, x, ch] = src[y, x, ch]


def _horizontal(image, weights_dev):
    h, w, c = image.shape
    tmp = device_like(h, w, c, dtype=np.float32)
    blocks, threads = launch_2d(h, w)
    _hpass_kernel[blocks, threads](image, weights_dev, tmp)
    return tmp


def blur(image, *, radius: float = 2.0):
    """Gaussian blur, sigma = radius, on every channel (alpha blurred the same way)."""
    h, w, c = check_device_image(image, "blur").shape
    radius = check_number(radius, "blur.radius", 0.1, 50.0)
    weights = cuda.to_device(gaussian_taps(radius))
    tmp = _horizontal(image, weights)
    out = device_like(h, w, c)
    blocks, threads = launch_2d(h, w)
    _vpass_blur_kernel[blocks, threads](tmp, weights, out)
    return out


def sharpen(image, *, amount: float = 1.0, radius: float = 1.0):
    """Unsharp mask out = clip(x + amount * (x - gaussian(x, radius))), every channel."""
    h, w, c = check_device_image(image, "sharpen").shape
    amount = check_number(amount, "sharpen.amount", 0.0, 10.0)
    radius = check_number(radius, "sharpen.radius", 0.1, 20.0)
    weights = cuda.to_device(gaussian_taps(radius))
    tmp = _horizontal(image, weights)
    out = device_like(h, w, c)
    blocks, threads = launch_2d(h, w)
    _vpass_unsharp_kernel[blocks, threads](tmp, weights, image, np.float32(amount), out)
    return out


def edges(image, *, threshold: int | None = None):
    """Sobel magnitude of luma (or 0/255 against threshold) on R, G, B; alpha untouched."""
    h, w, c = check_device_image(image, "edges").shape
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(
            threshold, (int, np.integer)) or not 0 <= threshold <= 255):
        raise FilterFailed(f"edges.threshold must be an integer between 0 and 255 or null, "
                           f"got {threshold!r}")
    out = device_like(h, w, c)
    blocks, threads = launch_2d(h, w)
    thr = np.float32(-1.0 if threshold is None else float(threshold))
    _sobel_kernel[blocks, threads](image, out, thr)
    return out
