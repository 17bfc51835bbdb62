"""Palette fitting for pixelate: median cut and k-means in OKLab on the small image.

Both work in OKLab (filters.colour), where squared distance follows what the eye sees,
so the error they minimise is the perceptual one; the fitted centres go back to sRGB at
the end. Deterministic by construction: median cut has no randomness and seeds k-means,
which runs at most KMEANS_ITERATIONS Lloyd iterations on at most FIT_SAMPLE pixels taken
at a fixed stride (median cut on all 8 million pixels of a 4K image took 62 s; on the
sample, ms). k-means is robust (reweighted towards the sum of distances, see
kmeans_lab), and small, vivid, contrasting regions can win an entry
(filters.palettes_salience).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from filters.colour import image_to_oklab, oklab_to_srgb8, palette_oklab
from filters.cpu_common import NJIT_PARALLEL, NJIT_SERIAL, PARALLEL_MIN_WORK
from filters.cpu_search import nearest_two
from filters.errors import FilterFailed
from filters.palettes_salience import reserve_salient, salience, sample_weights

METHODS = ("kmeans", "median_cut")
KMEANS_ITERATIONS = 40         # at most: deterministic and bounded time
KMEANS_TOLERANCE = 0.0005      # stop when no centre moves further (OKLab units)
ROBUST_FLOOR = 0.005           # OKLab distance below which reweighting stops growing
FIT_SAMPLE = 32768             # at most this many pixels (fixed stride) are fitted
SEED_SAMPLE = 4096             # k-means' median-cut seed looks at every 8th of those
COARSE_SAMPLE = 8192           # k-means iterates on every 4th sample first ...
FINE_ITERATIONS = 8            # ... then at most this many times on all of them
# A pass over all 32768 samples with 16 centres is ~0.7 ms: worth two threads.
ASSIGN_PARALLEL_MIN_WORK = min(PARALLEL_MIN_WORK, 1 << 19)
REFIT_MAX_CHROMA = 0.10        # refit_to_labels leaves entries at least this vivid
SEED_SALIENCE_GAIN = 4.0       # salient samples count up to 5 times in the median-cut seed


def _rgb_pixels(image: np.ndarray) -> np.ndarray:
    """(N, 3) uint8 colour pixels of an (h, w, 3|4) image (alpha ignored)."""
    return np.ascontiguousarray(image[..., :3]).reshape(-1, 3)


def sample_indices(count: int, limit: int = FIT_SAMPLE) -> np.ndarray:
    """At most `limit` indices of 0..count-1 at a fixed stride (deterministic)."""
    if count <= limit:
        return np.arange(count)
    return np.linspace(0, count - 1, limit).astype(np.int64)


def sample_pixels(pixels: np.ndarray, limit: int = FIT_SAMPLE) -> np.ndarray:
    """At most `limit` pixels at a fixed stride: fitting cost stays bounded, deterministic."""
    if len(pixels) <= limit:
        return pixels
    return pixels[sample_indices(len(pixels), limit)]


def to_oklab(pixels: np.ndarray) -> np.ndarray:
    """(N, 3) float64 OKLab of (N, 3) uint8 pixels (the kernels' conversion)."""
    return image_to_oklab(np.ascontiguousarray(pixels, dtype=np.uint8).reshape(-1, 1, 3)
                          ).reshape(-1, 3).astype(np.float64)


@njit(**NJIT_SERIAL)
def _block_sum(a, lo, n):
    """numpy's pairwise_sum leaf (n <= 128): eight accumulators, combined pairwise."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - (n % 8):
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(**NJIT_SERIAL)
def _pairwise_sum(a):
    """numpy's pairwise summation of `a` (ndarray.sum's exact rounding: blocks of at most
    128 summed by _block_sum, halves - rounded down to a multiple of 8 - added), so the
    compiled median cut gives the same boxes the numpy one did. Written with an explicit
    stack: numba's cache cannot reload recursive functions."""
    n = a.shape[0]
    if n <= 128:
        return _block_sum(a, 0, n)
    # (lo, n, state): state 0 = not split yet, 1 = waiting for its two halves.
    stack_lo = np.empty(64, np.int64)
    stack_n = np.empty(64, np.int64)
    stack_state = np.zeros(64, np.int64)
    results = np.empty(64)
    stack_lo[0], stack_n[0], stack_state[0] = 0, n, 0
    top = 1
    rtop = 0
    while top:
        lo, m, state = stack_lo[top - 1], stack_n[top - 1], stack_state[top - 1]
        if m <= 128:
            results[rtop] = _block_sum(a, lo, m)
            rtop += 1
            top -= 1
        elif state == 0:
            stack_state[top - 1] = 1
            half = m // 2
            half -= half % 8
            # push the right half first so the left one is summed first
            stack_lo[top], stack_n[top], stack_state[top] = lo + half, m - half, 0
            stack_lo[top + 1], stack_n[top + 1], stack_state[top + 1] = lo, half, 0
            top += 2
        else:
            left, right = results[rtop - 2], results[rtop - 1]
            rtop -= 2
            results[rtop] = left + right
            rtop += 1
            top -= 1
    return results[0]


@njit(**NJIT_SERIAL)
def _box_stats(lab, weights, box, mean):
    """Weighted squared error and axis of largest weighted variance of the points `box`;
    their weighted mean goes to `mean`."""
    n = box.shape[0]
    w = np.empty(n)
    for i in range(n):
        w[i] = weights[box[i]]
    total = _pairwise_sum(w)
    mean[:] = 0.0
    for i in range(n):
        for c in range(3):
            mean[c] += lab[box[i], c] * w[i]
    mean /= total
    var = np.zeros(3)
    for i in range(n):
        for c in range(3):
            d = lab[box[i], c] - mean[c]
            var[c] += w[i] * d ** 2
    axis = 0
    for c in range(1, 3):
        if var[c] > var[axis]:
            axis = c
    return (var[0] + var[1]) + var[2], axis


@njit(**NJIT_SERIAL)
def _median_cut(lab, weights, size):
    """The boxes are runs of `perm` (each in the points' original order, as numpy's
    boolean indexing kept them), listed in the order a Python list of boxes popping the
    split box and appending its halves would hold them."""
    perm = np.arange(lab.shape[0])
    starts = np.empty(size, np.int64)
    stops = np.empty(size, np.int64)
    scores = np.empty(size)
    axes = np.empty(size, np.int64)
    means = np.empty((size, 3))
    starts[0], stops[0] = 0, lab.shape[0]
    scores[0], axes[0] = _box_stats(lab, weights, perm, means[0])
    count = 1
    while count < size:
        best = 0
        for j in range(1, count):
            if scores[j] > scores[best]:
                best = j
        if scores[best] <= 1e-12:
            break  # every box is one colour: fewer distinct colours than `size`
        start, stop, axis = starts[best], stops[best], axes[best]
        for j in range(best, count - 1):  # pop(best)
            starts[j], stops[j], scores[j], axes[j] = \
                starts[j + 1], stops[j + 1], scores[j + 1], axes[j + 1]
            means[j] = means[j + 1]
        count -= 1
        box = perm[start:stop].copy()
        n = box.shape[0]
        values = np.empty(n)
        for i in range(n):
            values[i] = lab[box[i], axis]
        order = np.argsort(values, kind="mergesort")
        cumulative = np.empty(n)
        acc = 0.0
        for i in range(n):
            acc += weights[box[order[i]]]
            cumulative[i] = acc
        median = values[order[np.searchsorted(cumulative, cumulative[-1] / 2)]]
        # Split at the median VALUE, never inside a run of equal values, so one colour
        # never ends up averaged into two boxes.
        low = values < median
        if not low.any():
            low = values <= median
        at = start
        for i in range(n):  # stable partition: the low half, then the rest
            if low[i]:
                perm[at] = box[i]
                at += 1
        middle = at
        for i in range(n):
            if not low[i]:
                perm[at] = box[i]
                at += 1
        for lo, hi in ((start, middle), (middle, stop)):  # append both halves
            starts[count], stops[count] = lo, hi
            scores[count], axes[count] = _box_stats(lab, weights, perm[lo:hi], means[count])
            count += 1
    return means[:count].copy()


def median_cut_lab(lab: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Up to `size` OKLab centres: repeatedly split the box with the largest weighted
    squared error, along its axis of largest weighted variance, at the weighted median.
    Compiled (it was 2 ms of numpy calls per fit)."""
    return _median_cut(np.ascontiguousarray(lab, dtype=np.float64),
                       np.ascontiguousarray(weights, dtype=np.float64), int(size))


def median_cut(pixels: np.ndarray, size: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Up to `size` colours (uint8 sRGB) by weighted median cut in OKLab."""
    pixels = np.asarray(pixels, dtype=np.uint8).reshape(-1, 3)
    index = sample_indices(len(pixels))
    w = np.ones(len(index)) if weights is None else np.asarray(weights, np.float64)[index]
    return oklab_to_srgb8(median_cut_lab(to_oklab(pixels[index]), w, size))


@njit(**NJIT_SERIAL)
def _assign_range(points, centres, labels, nearest, lower, shifts, bounded, start, stop):
    """labels[i] = index of the nearest centre (squared Euclidean; lowest index on ties),
    nearest[i] = that squared distance, lower[i] = the distance to the second nearest.

    bounded (every call after a kmeans_lab's first): the centres moved by shifts[j]
    since the last call, so lower[i] minus the largest move of any other centre is still
    a lower bound on the distance to every other centre (triangle inequality; Hamerly
    2010). A point whose own centre is strictly nearer than that keeps its label without
    a search - the same answer the full search gives, at 1/k of its cost. Late Lloyd
    iterations move the centres little, so most points skip."""
    k = centres.shape[0]
    c0 = np.ascontiguousarray(centres[:, 0])
    c1 = np.ascontiguousarray(centres[:, 1])
    c2 = np.ascontiguousarray(centres[:, 2])
    dist = np.empty(k, np.float64)
    big, big_at, second = 0.0, -1, 0.0
    if bounded:
        for j in range(k):
            if shifts[j] > big:
                second = big
                big, big_at = shifts[j], j
            elif shifts[j] > second:
                second = shifts[j]
    for i in range(start, stop):
        if bounded:
            own = labels[i]
            d = 0.0
            for c in range(3):
                diff = points[i, c] - centres[own, c]
                d += diff * diff
            bound = lower[i] - (second if own == big_at else big) - 1e-9
            lower[i] = bound
            if bound > 0.0 and d < bound * bound:
                nearest[i] = d
                continue
        # Every distance first (a loop the compiler vectorises), then the first index
        # of the minimum (lowest index on ties) and the second smallest.
        best, best_d, second_d = nearest_two(points[i, 0], points[i, 1], points[i, 2], c0, c1, c2, dist)
        labels[i] = best
        nearest[i] = best_d
        lower[i] = np.sqrt(second_d)


@njit(**NJIT_SERIAL)
def _update(points, weights, labels, centres):
    """Move each centre to the weighted mean of its points; an empty cluster keeps its
    centre. Returns the largest move."""
    k = centres.shape[0]
    sums = np.zeros((k, 3), np.float64)
    totals = np.zeros(k, np.float64)
    for i in range(points.shape[0]):
        j = labels[i]
        w = weights[i]
        totals[j] += w
        for c in range(3):
            sums[j, c] += w * points[i, c]
    moved = 0.0
    for j in range(k):
        if totals[j] > 0:
            for c in range(3):
                new = sums[j, c] / totals[j]
                moved = max(moved, abs(new - centres[j, c]))
                centres[j, c] = new
    return moved


@njit(**NJIT_PARALLEL)
def _lloyd(points, weights, centres, iterations, robust, pinned, tolerance, floor2, parts):
    """kmeans_lab's loop, compiled whole (no Python between iterations): assign (the
    points split into `parts` run in parallel), reweight, update, re-pin, stop on
    tolerance."""
    n, k = points.shape[0], centres.shape[0]
    labels = np.empty(n, np.int64)
    nearest = np.empty(n, np.float64)
    lower = np.empty(n, np.float64)
    shifts = np.zeros(k, np.float64)
    current = weights.copy()
    kept = centres.copy()
    before = np.empty_like(centres)
    for step in range(iterations):
        bounded = step > 0
        for b in prange(parts):
            _assign_range(points, centres, labels, nearest, lower, shifts, bounded,
                          b * n // parts, (b + 1) * n // parts)
        if robust and step > 0:
            for i in range(n):
                current[i] = weights[i] / np.sqrt(nearest[i] + floor2)
        before[:] = centres
        moved = _update(points, current, labels, centres)
        for j in range(k):
            if pinned[j]:
                for c in range(3):
                    centres[j, c] = kept[j, c]
        if moved < tolerance:
            break
        for j in range(k):
            d = 0.0
            for c in range(3):
                diff = centres[j, c] - before[j, c]
                d += diff * diff
            shifts[j] = np.sqrt(d)


def kmeans_lab(points: np.ndarray, weights: np.ndarray, centres: np.ndarray,
               iterations: int = KMEANS_ITERATIONS, robust: bool = True,
               pinned: np.ndarray | None = None) -> np.ndarray:
    """Weighted Lloyd iterations in OKLab from `centres` (updated in place and returned).

    robust: after the first iteration each point's weight is divided by its distance to
    its centre (floored at ROBUST_FLOOR) - iteratively reweighted least squares, so the
    centres move towards minimising the weighted SUM of distances (the mean error the
    eye and CIEDE2000 averages see) rather than of squared distances, which lets a few
    far pixels drag a centre away from many near ones. Centres where `pinned` is True
    stay where they are (reserved salient entries). Assignment searches only the points
    whose centre might have changed (_assign_range); threads only when the work pays for
    waking them.
    """
    if pinned is None:
        pinned = np.zeros(len(centres), np.bool_)
    parts = 4 * numba.get_num_threads() \
        if len(points) * len(centres) >= ASSIGN_PARALLEL_MIN_WORK else 1
    _lloyd(np.ascontiguousarray(points, dtype=np.float64),
           np.ascontiguousarray(weights, dtype=np.float64), centres, int(iterations),
           bool(robust), np.ascontiguousarray(pinned, dtype=np.bool_), KMEANS_TOLERANCE,
           ROBUST_FLOOR * ROBUST_FLOOR, parts)
    return centres


@njit(**NJIT_SERIAL)
def _robust_sums(lab, labels, pal_lab, floor2, sums, totals):
    """Per palette entry, the sums of its pixels' OKLab and of their weights, each pixel
    weighted 1 / its distance to the entry (floored): one robust Lloyd update."""
    h, w = labels.shape
    for y in range(h):
        for x in range(w):
            j = labels[y, x]
            d = 0.0
            for c in range(3):
                diff = np.float64(lab[y, x, c]) - np.float64(pal_lab[j, c])
                d += diff * diff
            wt = 1.0 / np.sqrt(d + floor2)
            totals[j] += wt
            for c in range(3):
                sums[j, c] += wt * lab[y, x, c]


def refit_to_labels(lab: np.ndarray, labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """The (k, 3) uint8 palette moved, entry by entry, to the robust mean (kmeans_lab's
    reweighting) of the pixels that `labels` gives it - for a dithered result, the
    palette that serves the pixels dithering actually sends there. Unused entries stay,
    and so do vivid ones (OKLab chroma >= REFIT_MAX_CHROMA): the fit spent those on small
    vivid regions (palettes_salience), and dithering, which mixes them into neighbouring
    areas, would pull them towards the bulk (measured: salient colours lost)."""
    palette = np.ascontiguousarray(palette, dtype=np.uint8)
    pal_lab = palette_oklab(palette)
    sums = np.zeros((len(palette), 3), np.float64)
    totals = np.zeros(len(palette), np.float64)
    _robust_sums(np.ascontiguousarray(lab, dtype=np.float32), labels, pal_lab,
                 ROBUST_FLOOR * ROBUST_FLOOR, sums, totals)
    used = totals > 0
    used &= np.hypot(pal_lab[:, 1], pal_lab[:, 2]) < REFIT_MAX_CHROMA
    centres = pal_lab.astype(np.float64)
    centres[used] = sums[used] / totals[used, None]
    out = oklab_to_srgb8(centres)
    out[~used] = palette[~used]
    return out


def kmeans(pixels: np.ndarray, size: int, iterations: int = KMEANS_ITERATIONS,
           weights: np.ndarray | None = None) -> np.ndarray:
    """Up to `size` colours (uint8 sRGB) by weighted k-means in OKLab, seeded by median
    cut (deterministic)."""
    pixels = np.asarray(pixels, dtype=np.uint8).reshape(-1, 3)
    index = sample_indices(len(pixels))
    w = np.ones(len(index)) if weights is None else np.asarray(weights, np.float64)[index]
    points = to_oklab(pixels[index])
    seed = sample_indices(len(points), SEED_SAMPLE)
    centres = kmeans_lab(points, w, median_cut_lab(points[seed], w[seed], size), iterations)
    return oklab_to_srgb8(centres)


def fit_palette(small: np.ndarray, size: int, method: str = "kmeans") -> np.ndarray:
    """A (k <= size, 3) uint8 palette fitted to the colours of `small` (alpha ignored),
    in OKLab, with salient colours kept (filters.palettes_salience)."""
    if not 2 <= int(size) <= 256:
        raise FilterFailed(f"pixelate.palette_size must be between 2 and 256, got {size}")
    if method not in METHODS:
        raise FilterFailed(f"pixelate.method must be one of {', '.join(METHODS)}, got {method!r}")
    size = int(size)
    small = np.ascontiguousarray(small)
    index = sample_indices(small.shape[0] * small.shape[1])
    points = to_oklab(_rgb_pixels(small)[index])
    sal = salience(small, index, points)
    salient_weights = sample_weights(sal)
    if method == "median_cut":
        return oklab_to_srgb8(median_cut_lab(points, salient_weights, size))
    seed = sample_indices(len(points), SEED_SAMPLE)
    centres = median_cut_lab(points[seed], 1.0 + SEED_SALIENCE_GAIN * sal[seed], size)
    # Large samples: most iterations on a quarter of them, the last few on all.
    coarse = points if len(points) <= 2 * COARSE_SAMPLE else \
        points[sample_indices(len(points), COARSE_SAMPLE)]
    centres = kmeans_lab(coarse, np.ones(len(coarse)), centres)
    if len(coarse) < len(points):
        centres = kmeans_lab(points, np.ones(len(points)), centres, FINE_ITERATIONS)

    def refine(trial: np.ndarray, iterations: int, pinned: np.ndarray) -> None:
        kmeans_lab(coarse, np.ones(len(coarse)), trial, iterations, pinned=pinned)

    return oklab_to_srgb8(reserve_salient(points, salient_weights, sal, centres, refine))
