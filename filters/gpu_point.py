"""GPU point operations: brightness, contrast, grayscale.

brightness and contrast are one lookup-table kernel: the host builds the 256-entry table
of clip(round((v - center) * scale + center)) in float64 (brightness: center 0), exactly
as the CPU kernel does, and the GPU gathers through it (one read, one write per byte). contrast first needs the image's mean luma: a block-level shared-memory
reduction of the per-channel integer sums followed by one int64 atomic add per block
(exact and order-independent, so the mean is the same on every run and equals the
float mean of the per-pixel luma: luma is linear in R, G, B).
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from filters.cpu_common import check_number
from filters.gpu_launch import (
    REDUCE_SLOTS,
    check_device_image,
    device_like,
    launch_2d,
    luma,
    to_u8,
)


@cuda.jit
def _lut_kernel(src, lut, dst):
    """dst = lut[src] on R, G, B (table staged in shared memory), alpha copied."""
    table = cuda.shared.array(shape=256, dtype=np.uint8)
    tid = cuda.threadIdx.y * cuda.blockDim.x + cuda.threadIdx.x
    nthreads = cuda.blockDim.x * cuda.blockDim.y
    for i in range(tid, 256, nthreads):
        table[i] = lut[i]
    cuda.syncthreads()
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    h, w, c = src.shape
    for y in range(y0, h, sy):
        for x in range(x0, w, sx):
            for ch in range(3):
                dst[y, x, ch] = table[src[y, x, ch]]
            for ch in range(3, c):
                dst[y, x, ch] = src[y, x, ch]


@cuda.jit
def _grayscale_kernel(src, dst):
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    h, w, c = src.shape
    for y in range(y0, h, sy):
        for x in range(x0, w, sx):
            v = to_u8(luma(np.float32(src[y, x, 0]), np.float32(src[y, x, 1]),
                           np.float32(src[y, x, 2])))
            dst[y, x, 0] = v
            dst[y, x, 1] = v
            dst[y, x, 2] = v
            for ch in range(3, c):
                dst[y, x, ch] = src[y, x, ch]


@cuda.jit
def _channel_sums_kernel(src, sums):
    """sums[0..2] += per-channel totals; one shared-memory tree reduction per block."""
    sh = cuda.shared.array(shape=(REDUCE_SLOTS, 3), dtype=np.int64)
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    h, w, c = src.shape
    r = np.int64(0)
    g = np.int64(0)
    b = np.int64(0)
    for y in range(y0, h, sy):
        for x in range(x0, w, sx):
            r += np.int64(src[y, x, 0])
            g += np.int64(src[y, x, 1])
            b += np.int64(src[y, x, 2])
    tid = cuda.threadIdx.y * cuda.blockDim.x + cuda.threadIdx.x
    nthreads = cuda.blockDim.x * cuda.blockDim.y
    sh[tid, 0] = r
    sh[tid, 1] = g
    sh[tid, 2] = b
    cuda.syncthreads()
    step = nthreads // 2  # block sizes are powers of two (see gpu_launch)
    while step > 0:
        if tid < step:
            sh[tid, 0] += sh[tid + step, 0]
            sh[tid, 1] += sh[tid + step, 1]
            sh[tid, 2] += sh[tid + step, 2]
        cuda.syncthreads()
        step //= 2
    if tid == 0:
        cuda.atomic.add(sums, 0, sh[0, 0])
        cuda.atomic.add(sums, 1, sh[0, 1])
        cuda.atomic.add(sums, 2, sh[0, 2])


def affine_lut(scale: float, center: float) -> np.ndarray:
    """clip(round-half-up((v - center) * scale + center)) for v = 0..255, in float64.

    Built on the host exactly as the CPU kernel builds its table, so brightness and
    contrast agree with the CPU bit for bit given the same mean.
    """
    values = (np.arange(256, dtype=np.float64) - center) * scale + center
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)


def _apply_lut(image, lut: np.ndarray):
    h, w, c = image.shape
    out = device_like(h, w, c)
    blocks, threads = launch_2d(h, w)
    _lut_kernel[blocks, threads](image, cuda.to_device(lut), out)
    return out


def mean_luma(image) -> float:
    """Mean luma (0.299R + 0.587G + 0.114B) of a device image, via the sum reduction."""
    h, w, _ = image.shape
    sums = cuda.to_device(np.zeros(3, dtype=np.int64))
    blocks, threads = launch_2d(h, w)
    _channel_sums_kernel[blocks, threads](image, sums)
    r, g, b = (float(v) for v in sums.copy_to_host())
    return (0.299 * r + 0.587 * g + 0.114 * b) / float(h * w)


def brightness(image, *, factor: float = 1.2):
    """out = clip(round(x * factor)) on R, G, B; alpha untouched."""
    check_device_image(image, "brightness")
    factor = check_number(factor, "brightness.factor", 0.0, 10.0)
    return _apply_lut(image, affine_lut(factor, 0.0))


def contrast(image, *, factor: float = 1.2):
    """out = clip(round((x - m) * factor + m)), m = mean luma; alpha untouched."""
    check_device_image(image, "contrast")
    factor = check_number(factor, "contrast.factor", 0.0, 10.0)
    return _apply_lut(image, affine_lut(factor, mean_luma(image)))


def grayscale(image):
    """Luma replicated to R, G, B; alpha untouched."""
    h, w, c = check_device_image(image, "grayscale").shape
    out = device_like(h, w, c)
    blocks, threads = launch_2d(h, w)
    _grayscale_kernel[blocks, threads](image, out)
    return out
