"""Slow, obviously-correct reference filters: plain numpy, float64, no cleverness.

Every numba kernel test compares against these (or OpenCV / Pillow), like stumpy's
naive.py: if a kernel and its reference disagree, the reference is the one to believe.
"""
from __future__ import annotations

import math

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114])


def round_clip(values: np.ndarray) -> np.ndarray:
    """clip(round half up) to uint8."""
    return np.clip(np.floor(np.asarray(values, dtype=np.float64) + 0.5), 0, 255).astype(np.uint8)


def reflect101(i: int, n: int) -> int:
    """gfedcb|abcdefgh|gfedcba, repeated as often as needed."""
    if n == 1:
        return 0
    period = 2 * n - 2
    i = abs(i) % period
    return i if i < n else period - i


def gaussian_kernel(sigma: float) -> np.ndarray:
    half = max(1, math.ceil(3 * sigma))
    xs = np.arange(-half, half + 1, dtype=np.float64)
    k = np.exp(-xs**2 / (2 * sigma**2))
    return k / k.sum()


def gaussian_float(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian in float64 with reflect-101 borders, every channel."""
    k = gaussian_kernel(sigma)
    half = len(k) // 2
    img = image.astype(np.float64)
    h, w = img.shape[:2]
    rows = [reflect101(i, h) for i in range(-half, h + half)]
    cols = [reflect101(i, w) for i in range(-half, w + half)]
    padded = img[rows][:, cols]
    tmp = sum(k[t] * padded[t:t + h] for t in range(len(k)))
    return sum(k[t] * tmp[:, t:t + w] for t in range(len(k)))


def blur(image: np.ndarray, radius: float) -> np.ndarray:
    return round_clip(gaussian_float(image, radius))


def sharpen(image: np.ndarray, amount: float, radius: float) -> np.ndarray:
    x = image.astype(np.float64)
    return round_clip(x + amount * (x - gaussian_float(image, radius)))


def luma(image: np.ndarray) -> np.ndarray:
    return image[..., :3].astype(np.float64) @ LUMA


def with_alpha_of(rgb: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Stack a uint8 RGB result with the alpha channel of `image` (if any)."""
    if image.shape[2] == 4:
        return np.concatenate([rgb, image[..., 3:]], axis=2)
    return rgb


def brightness(image: np.ndarray, factor: float) -> np.ndarray:
    return with_alpha_of(round_clip(image[..., :3].astype(np.float64) * factor), image)


def contrast(image: np.ndarray, factor: float) -> np.ndarray:
    m = luma(image).mean()
    return with_alpha_of(round_clip((image[..., :3].astype(np.float64) - m) * factor + m), image)


def grayscale(image: np.ndarray) -> np.ndarray:
    g = round_clip(luma(image))
    return with_alpha_of(np.repeat(g[..., None], 3, axis=2), image)


def edges(image: np.ndarray, threshold: int | None) -> np.ndarray:
    lum = luma(image)
    h, w = lum.shape
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            p = [[lum[reflect101(y + dy, h), reflect101(x + dx, w)] for dx in (-1, 0, 1)]
                 for dy in (-1, 0, 1)]
            gx = (p[0][2] + 2 * p[1][2] + p[2][2]) - (p[0][0] + 2 * p[1][0] + p[2][0])
            gy = (p[2][0] + 2 * p[2][1] + p[2][2]) - (p[0][0] + 2 * p[0][1] + p[0][2])
            out[y, x] = math.hypot(gx, gy)
    if threshold is None:
        g = round_clip(np.minimum(out, 255))
    else:
        g = np.where(out >= threshold, 255, 0).astype(np.uint8)
    return with_alpha_of(np.repeat(g[..., None], 3, axis=2), image)


def resize_area(image: np.ndarray, th: int, tw: int) -> np.ndarray:
    """Each output pixel = mean of the source area it covers (exact box integral)."""
    h, w, c = image.shape
    img = image.astype(np.float64)
    sy, sx = h / th, w / tw
    out = np.zeros((th, tw, c))
    for ty in range(th):
        for tx in range(tw):
            y0, y1, x0, x1 = ty * sy, (ty + 1) * sy, tx * sx, (tx + 1) * sx
            total = np.zeros(c)
            for y in range(int(y0), min(math.ceil(y1), h)):
                wy = min(y1, y + 1) - max(y0, y)
                for x in range(int(x0), min(math.ceil(x1), w)):
                    wx = min(x1, x + 1) - max(x0, x)
                    total += wy * wx * img[y, x]
            out[ty, tx] = total / (sy * sx)
    return round_clip(out)


def resize_nearest(image: np.ndarray, th: int, tw: int) -> np.ndarray:
    h, w = image.shape[:2]
    ys = [min(int((i + 0.5) * h / th), h - 1) for i in range(th)]
    xs = [min(int((i + 0.5) * w / tw), w - 1) for i in range(tw)]
    return image[ys][:, xs]


def block_average(image: np.ndarray, block: int) -> np.ndarray:
    h, w, c = image.shape
    sh, sw = -(-h // block), -(-w // block)
    out = np.zeros((sh, sw, c), np.uint8)
    for by in range(sh):
        for bx in range(sw):
            patch = image[by * block:(by + 1) * block, bx * block:(bx + 1) * block]
            out[by, bx] = round_clip(patch.reshape(-1, c).astype(np.float64).mean(axis=0))
    return out


def upscale(small: np.ndarray, block: int, h: int, w: int) -> np.ndarray:
    return np.repeat(np.repeat(small, block, axis=0), block, axis=1)[:h, :w]


def oklab(rgb: np.ndarray) -> np.ndarray:
    """sRGB levels to OKLab, float64, written out from Ottosson's post (2020)."""
    v = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    r, g, b = lin[..., 0], lin[..., 1], lin[..., 2]
    lc = np.cbrt(0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b)
    mc = np.cbrt(0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b)
    sc = np.cbrt(0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b)
    return np.stack([
        0.2104542553 * lc + 0.7936177850 * mc - 0.0040720468 * sc,
        1.9779984951 * lc - 2.4285922050 * mc + 0.4505937099 * sc,
        0.0259040371 * lc + 0.7827717662 * mc - 0.8086757660 * sc,
    ], axis=-1)


def oklab_distances(image: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W, k) squared OKLab distances from every pixel to every palette colour."""
    lab = oklab(image[..., :3])
    pal = oklab(palette)
    return ((lab[..., None, :] - pal[None, None]) ** 2).sum(axis=-1)


def nearest_colours(image: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Brute force: every pixel to the palette colour at the least squared OKLab distance."""
    return with_alpha_of(palette[np.argmin(oklab_distances(image, palette), axis=-1)], image)


def floyd_steinberg(image: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Textbook Floyd-Steinberg in raster order on OKLab values (clamped to L 0..1,
    a and b to +-0.4 before matching)."""
    h, w = image.shape[:2]
    buf = oklab(image[..., :3])
    pal = oklab(palette)
    out = np.zeros((h, w, 3), np.uint8)
    for y in range(h):
        for x in range(w):
            old = np.clip(buf[y, x], [0.0, -0.4, -0.4], [1.0, 0.4, 0.4])
            k = int(np.argmin(((pal - old) ** 2).sum(axis=1)))
            out[y, x] = palette[k]
            err = old - pal[k]
            for dy, dx, wt in ((0, 1, 7), (1, -1, 3), (1, 0, 5), (1, 1, 1)):
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    buf[y + dy, x + dx] += err * wt / 16
    return with_alpha_of(out, image)


def _lanczos3(x: float) -> float:
    if abs(x) >= 3:
        return 0.0
    if x == 0:
        return 1.0
    px = math.pi * x
    return 3 * math.sin(px) * math.sin(px / 3) / (px * px)


def _lanczos_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights: Lanczos-3 widened by the scale when shrinking (Pillow)."""
    scale = n_in / n_out
    stretch = max(scale, 1.0)
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo = max(int(centre - 3 * stretch + 0.5), 0)
        hi = min(int(centre + 3 * stretch + 0.5), n_in)
        for x in range(lo, hi):
            m[i, x] = _lanczos3((x - centre + 0.5) / stretch)
        m[i] /= m[i].sum()
    return m


def resize_lanczos(image: np.ndarray, th: int, tw: int) -> np.ndarray:
    """Separable Lanczos-3 in float64, clipped once at the end."""
    h, w = image.shape[:2]
    my, mx = _lanczos_matrix(h, th), _lanczos_matrix(w, tw)
    out = np.einsum("yh,hwc->ywc", my, image.astype(np.float64))
    out = np.einsum("xw,ywc->yxc", mx, out)
    return round_clip(out)
