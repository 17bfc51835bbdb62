"""Palette fitting for pixelate: median cut and k-means on the small image's colours.

Deterministic by construction: median cut has no randomness and seeds k-means, which runs
at most KMEANS_ITERATIONS Lloyd iterations on at most FIT_SAMPLE pixels taken at a fixed
stride (median cut on all 8 million pixels of a 4K image took 62 s; on the sample, ms).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from filters.cpu_common import NJIT_PARALLEL, NJIT_SERIAL, PARALLEL_MIN_WORK
from filters.errors import FilterFailed

METHODS = ("kmeans", "median_cut")
KMEANS_ITERATIONS = 8          # fixed: deterministic and bounded time
FIT_SAMPLE = 32768             # at most this many pixels (fixed stride) are fitted


def _rgb_pixels(image: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 colour pixels of an (h, w, 3|4) image (alpha ignored)."""
    return np.ascontiguousarray(image[..., :3]).reshape(-1, 3)


def sample_pixels(pixels: np.ndarray, limit: int = FIT_SAMPLE) -> np.ndarray:
    """At most `limit` pixels at a fixed stride: fitting cost stays bounded, deterministic."""
    if len(pixels) <= limit:
        return pixels
    return pixels[np.linspace(0, len(pixels) - 1, limit).astype(np.int64)]


def median_cut(pixels: np.ndarray, size: int) -> np.ndarray:
    """Up to `size` colours: split the box with the widest channel range at its median."""
    pixels = sample_pixels(np.asarray(pixels, dtype=np.uint8).reshape(-1, 3))

    def widest(box: np.ndarray) -> int:
        return int(np.ptp(box, axis=0).max()) if len(box) > 1 else 0

    boxes = [pixels]
    ranges = [widest(pixels)]
    while len(boxes) < size:
        best = int(np.argmax(ranges))
        if ranges[best] == 0:
            break  # every box is one colour: fewer distinct colours than `size`
        box = boxes.pop(best)
        ranges.pop(best)
        channel = int(np.argmax(np.ptp(box, axis=0)))
        values = box[:, channel]
        # Split at the median VALUE, never inside a run of equal values, so one colour
        # never ends up averaged into two boxes.
        median = np.sort(values)[len(values) // 2]
        low = values < median
        if not low.any():
            low = values <= median
        for part in (box[low], box[~low]):
            boxes.append(part)
            ranges.append(widest(part))
    means = [np.floor(b.astype(np.float64).mean(axis=0) + 0.5) for b in boxes]
    return np.array(means, dtype=np.uint8)


@njit(**NJIT_SERIAL)
def _assign_range(points, centres, labels, start, stop):
    """labels[i] = index of the nearest centre (squared Euclidean; lowest index on ties)."""
    for i in range(start, stop):
        best = 0
        best_d = np.inf
        for k in range(centres.shape[0]):
            d = 0.0
            for c in range(3):
                diff = points[i, c] - centres[k, c]
                d += diff * diff
            if d < best_d:
                best_d = d
                best = k
        labels[i] = best


@njit(**NJIT_PARALLEL)
def _assign_parallel(points, centres, labels, parts):
    n = points.shape[0]
    for b in prange(parts):
        _assign_range(points, centres, labels, b * n // parts, (b + 1) * n // parts)


def _assign(points: np.ndarray, centres: np.ndarray, labels: np.ndarray) -> None:
    """Nearest-centre labels; threads only when the work pays for waking them."""
    if len(points) * len(centres) >= PARALLEL_MIN_WORK:
        _assign_parallel(points, centres, labels, 4 * numba.get_num_threads())
    else:
        _assign_range(points, centres, labels, 0, len(points))


@njit(**NJIT_SERIAL)
def _update(points, labels, centres):
    """Move each centre to the mean of its points; an empty cluster keeps its centre."""
    k = centres.shape[0]
    sums = np.zeros((k, 3), np.float64)
    counts = np.zeros(k, np.int64)
    for i in range(points.shape[0]):
        j = labels[i]
        counts[j] += 1
        for c in range(3):
            sums[j, c] += points[i, c]
    moved = 0.0
    for j in range(k):
        if counts[j] > 0:
            for c in range(3):
                new = sums[j, c] / counts[j]
                moved = max(moved, abs(new - centres[j, c]))
                centres[j, c] = new
    return moved


def kmeans(pixels: np.ndarray, size: int, iterations: int = KMEANS_ITERATIONS) -> np.ndarray:
    """Up to `size` colours by Lloyd's k-means, seeded by median cut (deterministic)."""
    pixels = sample_pixels(np.asarray(pixels, dtype=np.uint8).reshape(-1, 3))
    centres = median_cut(pixels, size).astype(np.float64)
    points = pixels.astype(np.float64)
    labels = np.empty(len(points), np.int64)
    for _ in range(iterations):
        _assign(points, centres, labels)
        if _update(points, labels, centres) < 0.5:
            break
    return np.clip(np.floor(centres + 0.5), 0, 255).astype(np.uint8)


def fit_palette(small: np.ndarray, size: int, method: str = "kmeans") -> np.ndarray:
    """A (k <= size, 3) uint8 palette fitted to the colours of `small` (alpha ignored)."""
    if not 2 <= int(size) <= 256:
        raise FilterFailed(f"pixelate.palette_size must be between 2 and 256, got {size}")
    pixels = _rgb_pixels(small)
    if method == "kmeans":
        return kmeans(pixels, int(size))
    if method == "median_cut":
        return median_cut(pixels, int(size))
    raise FilterFailed(f"pixelate.method must be one of {', '.join(METHODS)}, got {method!r}")
