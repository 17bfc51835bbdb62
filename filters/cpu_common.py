"""Shared helpers of the numba CPU kernels: input checks, border tables, Gaussian taps.

Kernels take C-contiguous uint8 arrays of one layout (3-D, or a 2-D (H, W*C) row view of
one) and float64/float32 scalars consistently, so each kernel compiles to ONE signature:
a cold cache then costs one compilation per kernel, not one per channel count or dtype.
"""
from __future__ import annotations

import math

import numpy as np

from filters.errors import FilterFailed

# Luma weights of ITU-R 601 (Pillow's "L"); the GPU kernels use the same float32 values.
LUMA_R, LUMA_G, LUMA_B = 0.299, 0.587, 0.114

# Options shared by every CPU kernel. fastmath only where reassociation is harmless
# (sums of positive weights); cache=True so a new process loads machine code in ~0.15 s.
NJIT_PARALLEL = dict(parallel=True, cache=True, nogil=True)
NJIT_FAST = dict(parallel=True, cache=True, nogil=True, fastmath=True)
NJIT_SERIAL = dict(cache=True, nogil=True)
# Work (e.g. pixels x palette colours) below which one thread beats waking the others:
# a parallel region costs ~0.1 ms idle and milliseconds when the cores are busy.
PARALLEL_MIN_WORK = 4_000_000

# Helpers called from inside parallel kernels (no prange of their own).
NJIT_INNER = dict(cache=True, nogil=True, fastmath=True)


def check_image(image: object, filter_name: str) -> np.ndarray:
    """The image as a C-contiguous uint8 (H, W, 3|4) array, or FilterFailed saying why."""
    if not isinstance(image, np.ndarray):
        raise FilterFailed(f"{filter_name}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise FilterFailed(f"{filter_name}: expected uint8 pixels, got {image.dtype}")
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise FilterFailed(
            f"{filter_name}: expected an (H, W, 3) or (H, W, 4) image, got shape {image.shape}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise FilterFailed(f"{filter_name}: the image has no pixels (shape {image.shape})")
    if not image.flags.writeable:
        # numba types a read-only array differently: it would compile (seconds) a second
        # signature of every kernel instead of loading the cached one. A copy is ~ms.
        return np.array(image, order="C")
    return np.ascontiguousarray(image)


def check_number(value: object, name: str, low: float, high: float) -> float:
    """A finite float within [low, high], or FilterFailed naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise FilterFailed(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < low or number > high:
        raise FilterFailed(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return number


def reflect101(i: int, n: int) -> int:
    """OpenCV's BORDER_REFLECT_101 index (gfedcb|abcdefgh|gfedcba), looped for big radii."""
    if n == 1:
        return 0
    while i < 0 or i >= n:
        if i < 0:
            i = -i
        if i >= n:
            i = 2 * n - 2 - i
    return i


def reflect_table(n: int, half: int) -> np.ndarray:
    """int64 source index for each padded position -half .. n+half-1 (reflect-101)."""
    return np.array([reflect101(i, n) for i in range(-half, n + half)], dtype=np.int64)


def gaussian_taps(sigma: float) -> np.ndarray:
    """Normalised Gaussian taps, half-width ceil(3*sigma) (at least 1), float32."""
    half = max(1, int(math.ceil(3.0 * sigma)))
    xs = np.arange(-half, half + 1, dtype=np.float64)
    taps = np.exp(-(xs * xs) / (2.0 * sigma * sigma))
    return (taps / taps.sum()).astype(np.float32)


def row_blocks(height: int, threads: int) -> np.ndarray:
    """Row boundaries splitting `height` rows into a few blocks per thread (int64).

    Each prange iteration owns one block and allocates its scratch rows once, so buffers
    are not reallocated per row while all threads still get work.
    """
    count = max(1, min(height, threads * 4))
    return np.linspace(0, height, count + 1).round().astype(np.int64)
