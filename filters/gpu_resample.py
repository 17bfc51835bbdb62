"""Host-side resampling tables for the GPU resize: one (indices, weights) pair per axis.

Every interpolation the GPU offers is a separable weighted sum, so the kernels stay
generic and all the interpolation-specific arithmetic lives here in plain numpy, once
per call: for each output coordinate, K source indices (already clamped, so kernels do
no border logic) and K float32 weights (zero-padded). Conventions follow OpenCV's
cv2.resize (pixel centres at +0.5, replicated borders), which is what the CPU kernels
are tested against.
"""
from __future__ import annotations

import math

import numpy as np

Table = tuple[np.ndarray, np.ndarray]  # (int32 [n_out, K], float32 [n_out, K])


def _pack(rows: list[tuple[list[int], list[float]]], n_src: int) -> Table:
    """Pad ragged (indices, weights) rows to one K, clamping indices into the source."""
    k = max(1, max(len(i) for i, _ in rows))
    idx = np.zeros((len(rows), k), dtype=np.int32)
    wts = np.zeros((len(rows), k), dtype=np.float32)
    for r, (ii, ww) in enumerate(rows):
        idx[r, : len(ii)] = np.clip(ii, 0, n_src - 1)
        wts[r, : len(ww)] = ww
    return idx, wts


def nearest_table(n_src: int, n_dst: int) -> Table:
    """OpenCV INTER_NEAREST: source index floor(d * n_src / n_dst)."""
    scale = n_src / n_dst
    src = np.minimum(np.floor(np.arange(n_dst) * scale).astype(np.int64), n_src - 1)
    return src.astype(np.int32).reshape(-1, 1), np.ones((n_dst, 1), dtype=np.float32)


def bilinear_table(n_src: int, n_dst: int) -> Table:
    """OpenCV INTER_LINEAR: half-pixel centres, two taps, replicated border."""
    scale = n_src / n_dst
    rows = []
    for d in range(n_dst):
        f = (d + 0.5) * scale - 0.5
        s = math.floor(f)
        t = f - s
        if s < 0:
            s, t = 0, 0.0
        if s >= n_src - 1:
            s, t = n_src - 1, 0.0
        rows.append(([s, s + 1], [1.0 - t, t]))
    return _pack(rows, n_src)


def area_table(n_src: int, n_dst: int) -> Table:
    """Box filter: each output averages the source interval it covers (exact overlaps).

    When enlarging, OpenCV's INTER_AREA is a two-tap blend whose weight is the fraction
    of the output pixel lying past the source pixel boundary (sharper than bilinear);
    area_enlarge_table reproduces it.
    """
    if n_dst >= n_src:
        return area_enlarge_table(n_src, n_dst)
    scale = n_src / n_dst
    rows = []
    for d in range(n_dst):
        lo, hi = d * scale, min((d + 1) * scale, float(n_src))
        ii, ww = [], []
        for s in range(int(math.floor(lo)), int(math.ceil(hi))):
            overlap = min(hi, s + 1.0) - max(lo, float(s))
            if overlap > 1e-9:
                ii.append(s)
                ww.append(overlap / scale)
        rows.append((ii, ww))
    return _pack(rows, n_src)


def area_enlarge_table(n_src: int, n_dst: int) -> Table:
    """OpenCV INTER_AREA when enlarging: s = floor(d / k), t = frac(max(0, d + 1 - (s + 1) * k))
    with k = n_dst / n_src, taps (s, s + 1) weighted (1 - t, t), replicated border."""
    k = n_dst / n_src
    rows = []
    for d in range(n_dst):
        s = math.floor(d / k)
        t = (d + 1) - (s + 1) * k
        t = 0.0 if t <= 0 else t - math.floor(t)
        if s >= n_src - 1:
            s, t = n_src - 1, 0.0
        rows.append(([s, s + 1], [1.0 - t, t]))
    return _pack(rows, n_src)


def lanczos_table(n_src: int, n_dst: int, a: int = 4) -> Table:
    """OpenCV INTER_LANCZOS4: 2a taps of sinc(x) * sinc(x / a), half-pixel centres,
    weights normalised to sum 1, replicated border."""
    scale = n_src / n_dst
    rows = []
    for d in range(n_dst):
        f = (d + 0.5) * scale - 0.5
        s = math.floor(f)
        t = f - s
        ii = [s + k for k in range(-a + 1, a + 1)]
        xs = np.array([t - k for k in range(-a + 1, a + 1)], dtype=np.float64)
        ww = np.sinc(xs) * np.sinc(xs / a)
        ww = ww / ww.sum()
        rows.append((ii, ww.tolist()))
    return _pack(rows, n_src)


def table_for(interpolation: str, n_src: int, n_dst: int) -> Table:
    """The table of one axis; `auto` is area when shrinking that axis, else bilinear."""
    if interpolation == "auto":
        interpolation = "area" if n_dst < n_src else "bilinear"
    if interpolation == "nearest":
        return nearest_table(n_src, n_dst)
    if interpolation == "bilinear":
        return bilinear_table(n_src, n_dst)
    if interpolation == "area":
        return area_table(n_src, n_dst)
    if interpolation == "lanczos":
        return lanczos_table(n_src, n_dst)
    raise ValueError(f"unknown interpolation {interpolation!r}")
