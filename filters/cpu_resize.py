"""resize on the CPU: one separable resampling kernel driven by per-axis tap tables.

Every interpolation (nearest, bilinear, area, lanczos) is expressed as, for each output
row/column, a few (source index, weight) taps computed on the host in float64. The kernel
sums the tapped source rows into a float32 row buffer (contiguous, vectorised), then
resamples that buffer horizontally: one compiled kernel serves all four modes.

Conventions (documented in docs/benchmarks.md): pixel centres at +0.5.
- nearest: source = floor((i + 0.5) * scale) (Pillow's NEAREST, OpenCV's NEAREST_EXACT).
- bilinear: OpenCV INTER_LINEAR (no antialiasing; edge-clamped).
- area: exact box coverage (OpenCV INTER_AREA when shrinking).
- lanczos: Lanczos-3 with the support widened by the scale when shrinking (Pillow's LANCZOS).
- auto: area on an axis that shrinks (or stays), bilinear on an axis that grows.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numba
import numpy as np
from numba import njit, prange

from filters.cpu_blocks import MAX_BLOCK_ROWS, block_mean
from filters.cpu_common import NJIT_FAST, check_image, row_blocks
from filters.errors import FilterFailed
from filters.geometry import resize_target

INTERPOLATIONS = ("auto", "nearest", "bilinear", "area", "lanczos")


def _pack(index_rows: list[list[int]], weight_rows: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged taps -> (n_out, max_taps) int64 indices and float32 weights (pads weigh 0)."""
    taps = max(len(r) for r in index_rows)
    idx = np.zeros((len(index_rows), taps), np.int64)
    wts = np.zeros((len(index_rows), taps), np.float32)
    for i, (ix, wt) in enumerate(zip(index_rows, weight_rows)):
        idx[i, : len(ix)] = ix
        idx[i, len(ix):] = ix[-1] if ix else 0
        wts[i, : len(wt)] = wt
    return idx, wts


def _nearest_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    scale = n_in / n_out
    src = np.minimum(np.floor((np.arange(n_out) + 0.5) * scale).astype(np.int64), n_in - 1)
    return src.reshape(-1, 1), np.ones((n_out, 1), np.float32)


def _bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    scale = n_in / n_out
    pos = (np.arange(n_out) + 0.5) * scale - 0.5
    left = np.floor(pos).astype(np.int64)
    frac = pos - left
    frac[left < 0] = 0.0
    left[left < 0] = 0
    over = left >= n_in - 1
    if n_in > 1:  # clamp to the last pixel as (n-2, n-1) with all weight on n-1
        left[over] = n_in - 2
        frac[over] = 1.0
    else:
        left[over] = 0
        frac[over] = 0.0
    right = np.minimum(left + 1, n_in - 1)
    idx = np.stack([left, right], axis=1)
    wts = np.stack([1.0 - frac, frac], axis=1).astype(np.float32)
    return idx, wts


def _area_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    scale = n_in / n_out
    index_rows, weight_rows = [], []
    for i in range(n_out):
        start, end = i * scale, (i + 1) * scale
        first, last = int(math.floor(start)), min(int(math.ceil(end)), n_in)
        ix, wt = [], []
        for s in range(first, last):
            cover = min(end, s + 1) - max(start, s)
            if cover > 1e-12:
                ix.append(s)
                wt.append(cover / scale)
        index_rows.append(ix)
        weight_rows.append(wt)
    return _pack(index_rows, weight_rows)


def _lanczos(x: np.ndarray) -> np.ndarray:
    out = np.sinc(x) * np.sinc(x / 3.0)
    out[np.abs(x) >= 3.0] = 0.0
    return out


def _lanczos_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    scale = n_in / n_out
    stretch = max(scale, 1.0)
    support = 3.0 * stretch
    index_rows, weight_rows = [], []
    for i in range(n_out):
        centre = (i + 0.5) * scale
        first = max(int(centre - support + 0.5), 0)
        last = min(int(centre + support + 0.5), n_in)
        xs = np.arange(first, last)
        wt = _lanczos((xs - centre + 0.5) / stretch)
        total = wt.sum()
        wt = wt / total if total != 0 else np.full(len(xs), 1.0 / len(xs))
        index_rows.append(list(xs))
        weight_rows.append(list(wt))
    return _pack(index_rows, weight_rows)


_TAPS = {
    "nearest": _nearest_taps,
    "bilinear": _bilinear_taps,
    "area": _area_taps,
    "lanczos": _lanczos_taps,
}


def axis_taps(n_in: int, n_out: int, interpolation: str) -> tuple[np.ndarray, np.ndarray]:
    """(indices, weights) of one axis; `auto` = area when shrinking, bilinear when growing."""
    if interpolation == "auto":
        interpolation = "area" if n_out <= n_in else "bilinear"
    return _TAPS[interpolation](n_in, n_out)


@njit(**NJIT_FAST)
def _resample(src, yidx, ywts, xidx_t, xwts_t, pair, blocks, out):
    """out[ty, tx] = sum_k xw * (sum_i yw * src[yi, xk]) over row blocks.

    x tables are transposed (taps, tw) so the horizontal pass runs tap-outer over all
    output pixels (a per-pixel inner tap loop measured ~3x slower). `pair`: exactly two
    taps per output column, always at adjacent source columns (bilinear), fused.
    """
    h, w, channels = src.shape
    row_len = w * channels
    flat = src.reshape(h, row_len)
    tw = out.shape[1]
    n_out = tw * channels
    ytaps = yidx.shape[1]
    xtaps = xidx_t.shape[0]
    for b in prange(blocks.shape[0] - 1):
        buf = np.empty(row_len, np.float32)
        acc = np.empty(n_out, np.float32)
        for ty in range(blocks[b], blocks[b + 1]):
            # Vertical pass, two source rows per sweep over the buffer (2.4x fewer
            # buffer loads/stores than one row per sweep).
            first = flat[yidx[ty, 0]]
            w0 = ywts[ty, 0]
            if ytaps >= 2:
                second = flat[yidx[ty, 1]]
                w1 = ywts[ty, 1]
                for j in range(row_len):
                    buf[j] = w0 * np.float32(first[j]) + w1 * np.float32(second[j])
            else:
                for j in range(row_len):
                    buf[j] = w0 * np.float32(first[j])
            for k in range(2, ytaps - 1, 2):
                ra = flat[yidx[ty, k]]
                rb = flat[yidx[ty, k + 1]]
                wa = ywts[ty, k]
                wb = ywts[ty, k + 1]
                for j in range(row_len):
                    buf[j] += wa * np.float32(ra[j]) + wb * np.float32(rb[j])
            if ytaps > 2 and ytaps % 2 == 1:
                last = flat[yidx[ty, ytaps - 1]]
                wl = ywts[ty, ytaps - 1]
                for j in range(row_len):
                    buf[j] += wl * np.float32(last[j])
            dst = out[ty].reshape(n_out)
            if pair and channels == 3:
                # Two adjacent taps (bilinear): one fused pass, no accumulator row.
                i0 = xidx_t[0]
                w0r = xwts_t[0]
                w1r = xwts_t[1]
                for tx in range(tw):
                    p = i0[tx] * 3
                    a = w0r[tx]
                    bw = w1r[tx]
                    # Convex weights of values in [0, 255]: no clipping needed.
                    q = tx * 3
                    dst[q] = np.uint8(a * buf[p] + bw * buf[p + 3] + np.float32(0.5))
                    dst[q + 1] = np.uint8(a * buf[p + 1] + bw * buf[p + 4] + np.float32(0.5))
                    dst[q + 2] = np.uint8(a * buf[p + 2] + bw * buf[p + 5] + np.float32(0.5))
                continue
            for j in range(n_out):
                acc[j] = 0.0
            for k in range(xtaps):
                ik = xidx_t[k]
                wk = xwts_t[k]
                if channels == 3:
                    for tx in range(tw):
                        p = ik[tx] * 3
                        q = tx * 3
                        wt = wk[tx]
                        acc[q] += wt * buf[p]
                        acc[q + 1] += wt * buf[p + 1]
                        acc[q + 2] += wt * buf[p + 2]
                else:
                    for tx in range(tw):
                        p = ik[tx] * channels
                        q = tx * channels
                        wt = wk[tx]
                        for c in range(channels):
                            acc[q + c] += wt * buf[p + c]
            for j in range(n_out):
                v = min(max(acc[j], np.float32(0.0)), np.float32(255.0))
                dst[j] = np.uint8(v + np.float32(0.5))


def _integer_area_factors(h: int, w: int, th: int, tw: int, interpolation: str) -> tuple[int, int] | None:
    """(fy, fx) when the resize is an exact integer-factor box shrink, else None."""
    if interpolation not in ("auto", "area") or h % th or w % tw:
        return None
    fy, fx = h // th, w // tw
    return (fy, fx) if fy <= MAX_BLOCK_ROWS else None


def resize(
    image: np.ndarray,
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float | None = None,
    interpolation: str = "auto",
) -> np.ndarray:
    """Resample to the size from filters.geometry.resize_target; alpha resampled too."""
    image = check_image(image, "resize")
    if interpolation not in INTERPOLATIONS:
        raise FilterFailed(
            f"resize.interpolation must be one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}"
        )
    h, w, c = image.shape
    th, tw = resize_target(h, w, width, height, scale)
    if (th, tw) == (h, w) and interpolation in ("auto", "nearest", "area"):
        return image.copy()
    blocks = row_blocks(th, numba.get_num_threads())
    factors = _integer_area_factors(h, w, th, tw, interpolation)
    if factors is not None:  # exact integer sums: faster, and equal to OpenCV's INTER_AREA
        return block_mean(image, factors[0], factors[1], blocks)
    yidx, ywts, xidx_t, xwts_t, pair = _resize_tables(h, w, th, tw, interpolation)
    out = np.empty((th, tw, c), np.uint8)
    _resample(image, yidx, ywts, xidx_t, xwts_t, pair, blocks, out)
    return out


@lru_cache(maxsize=64)
def _resize_tables(h: int, w: int, th: int, tw: int, interpolation: str):
    """Both axes' tap tables, x transposed for the kernel, and whether the fused pass applies.

    Cached, as the GPU path caches its own (gpu_resize._taps_on_device): building a table
    is a Python loop over the output size — measured 2 x 27 ms for 2040x1356 -> 512 on the
    loaded 2-core machine, more than the resize kernel itself — and a worker sees the same
    sizes again and again (every thumbnail of one camera). The kernel only reads them.
    """
    yidx, ywts = axis_taps(h, th, interpolation)
    xidx, xwts = axis_taps(w, tw, interpolation)
    # The fused two-tap pass skips clipping: only valid for non-negative weights (bilinear,
    # area), not for Lanczos lobes, which can reach two taps on a 2-pixel-wide input.
    pair = (xidx.shape[1] == 2 and w > 1 and bool(np.all(xidx[:, 1] == xidx[:, 0] + 1))
            and bool(np.all(xwts >= 0)) and bool(np.all(ywts >= 0)))
    return yidx, ywts, np.ascontiguousarray(xidx.T), np.ascontiguousarray(xwts.T), pair
