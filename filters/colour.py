"""Perceptual colour for the palette code: sRGB <-> OKLab, and CIELAB with CIEDE2000.

Why OKLab: pixel art is judged by eye, and squared RGB distance is not what the eye sees
(the README sample's red disc (230, 60, 50) is nearer PICO-8's brown than its red in RGB,
and obviously red to anyone looking). OKLab (Björn Ottosson, 2020) is nearly as uniform
as CIEDE2000 for this job but is a 3x3 matrix, a cube root and another 3x3 matrix, so the
kernels can afford it per pixel. CIEDE2000 (CIELAB, D65) is used where the answer is a
judgement rather than a hot loop: the quality benchmark and the tests.

`oklab_from_srgb8` is plain Python, compiled as a CUDA device function (and with
numba.njit for the few CPU kernels that convert one pixel at a time); the CPU converts
whole rows and images with `oklab_span`, the same float32 arithmetic in batches (tested
bit for bit against the per-pixel function), so both backends get the same values. The
vectorised numpy functions work in float64 and are the reference the kernels are tested
against.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from filters.cpu_common import NJIT_PARALLEL, NJIT_SERIAL

# Linear sRGB -> LMS and LMS' -> OKLab (Ottosson's published matrices).
SRGB_TO_LMS = np.array([
    [0.4122214708, 0.5363325363, 0.0514459929],
    [0.2119034982, 0.6806995451, 0.1073969566],
    [0.0883024619, 0.2817188376, 0.6299787005],
])
LMS_TO_OKLAB = np.array([
    [0.2104542553, 0.7936177850, -0.0040720468],
    [1.9779984951, -2.4285922050, 0.4505937099],
    [0.0259040371, 0.7827717662, -0.8086757660],
])
# CIE XYZ (D65) -> LMS, for checking against Ottosson's published XYZ test pairs.
XYZ_TO_LMS = np.array([
    [0.8189330101, 0.3618667424, -0.1288597137],
    [0.0329845436, 0.9293118715, 0.0361456387],
    [0.0482003018, 0.2643662691, 0.6338517070],
])
OKLAB_TO_LMS = np.linalg.inv(LMS_TO_OKLAB)
LMS_TO_SRGB = np.linalg.inv(SRGB_TO_LMS)
# Linear sRGB -> XYZ (D65, IEC 61966-2-1) and the D65 white for CIELAB.
SRGB_TO_XYZ = np.array([
    [0.4124564, 0.3575761, 0.1804375],
    [0.2126729, 0.7151522, 0.0721750],
    [0.0193339, 0.1191920, 0.9503041],
])
D65_WHITE = SRGB_TO_XYZ.sum(axis=1)


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """sRGB levels 0..255 (any dtype) to linear light 0..1, float64 (IEC 61966-2-1)."""
    v = np.asarray(values, dtype=np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(values: np.ndarray) -> np.ndarray:
    """Linear light (clipped to 0..1) to sRGB levels 0..255, float64 (not rounded)."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    return 255.0 * np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


# The kernels' linearisation table: sRGB level -> linear light, float32.
LINEAR_LUT = srgb_to_linear(np.arange(256)).astype(np.float32)


def linear_to_oklab(linear: np.ndarray) -> np.ndarray:
    """(..., 3) linear sRGB to OKLab, float64."""
    lms = np.asarray(linear, dtype=np.float64) @ SRGB_TO_LMS.T
    return np.cbrt(lms) @ LMS_TO_OKLAB.T


def srgb_to_oklab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB levels 0..255 to OKLab (L 0..1), float64."""
    return linear_to_oklab(srgb_to_linear(rgb))


def xyz_to_oklab(xyz: np.ndarray) -> np.ndarray:
    """(..., 3) CIE XYZ (D65, Y of white = 1) to OKLab, float64."""
    lms = np.asarray(xyz, dtype=np.float64) @ XYZ_TO_LMS.T
    return np.cbrt(lms) @ LMS_TO_OKLAB.T


def oklab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """(..., 3) OKLab to sRGB levels, float64 in 0..255 (out-of-gamut colours clipped in
    linear light, per channel)."""
    lms = (np.asarray(lab, dtype=np.float64) @ OKLAB_TO_LMS.T) ** 3
    return linear_to_srgb(lms @ LMS_TO_SRGB.T)


def oklab_to_srgb8(lab: np.ndarray) -> np.ndarray:
    """OKLab to the nearest uint8 sRGB levels (round half up, clipped)."""
    return np.clip(np.floor(oklab_to_srgb(lab) + 0.5), 0, 255).astype(np.uint8)


def srgb_to_cielab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB levels 0..255 to CIELAB (D65), float64."""
    xyz = srgb_to_linear(rgb) @ SRGB_TO_XYZ.T / D65_WHITE
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


def delta_e_2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference of CIELAB arrays (broadcast), kL = kC = kH = 1.

    Follows Sharma, Wu and Dalal (2005), whose published test pairs tests/ checks.
    """
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_bar**7 / (c_bar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    h1p = np.where(c1p == 0, 0.0, h1p)
    h2p = np.where(c2p == 0, 0.0, h2p)
    dl = L2 - L1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dH = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2)
    l_bar = (L1 + L2) / 2
    cp_bar = (c1p + c2p) / 2
    hsum = h1p + h2p
    h_bar = np.where(np.abs(h1p - h2p) > 180,
                     np.where(hsum < 360, hsum + 360, hsum - 360), hsum) / 2
    h_bar = np.where(c1p * c2p == 0, hsum, h_bar)
    t = (1 - 0.17 * np.cos(np.radians(h_bar - 30)) + 0.24 * np.cos(np.radians(2 * h_bar))
         + 0.32 * np.cos(np.radians(3 * h_bar + 6)) - 0.20 * np.cos(np.radians(4 * h_bar - 63)))
    d_theta = 30 * np.exp(-(((h_bar - 275) / 25) ** 2))
    rc = 2 * np.sqrt(cp_bar**7 / (cp_bar**7 + 25.0**7))
    sl = 1 + 0.015 * (l_bar - 50) ** 2 / np.sqrt(20 + (l_bar - 50) ** 2)
    sc = 1 + 0.045 * cp_bar
    sh = 1 + 0.015 * cp_bar * t
    rt = -np.sin(np.radians(2 * d_theta)) * rc
    return np.sqrt((dl / sl) ** 2 + (dc / sc) ** 2 + (dH / sh) ** 2
                   + rt * (dc / sc) * (dH / sh))


# --- The kernels' conversion (float32, compiled for the CPU and as a CUDA device function)
CBRT_MAGIC = 709921077   # 0x2A50_8935: bits(x) / 3 + this ~ bits(cbrt(x)) for float32


def oklab_from_srgb8(lut, r, g, b):
    """OKLab (L, a, b) of the sRGB levels r, g, b (integers 0..255): table lookup to linear
    light, Ottosson's two matrices, and a float32 cube root of each LMS component.

    The cube root is the classic exponent trick (a float's bits divided by 3, plus
    CBRT_MAGIC: within ~3 %) refined by two Halley steps y <- y (y^3 + 2x) / (2y^3 + x),
    each tripling the correct digits: float32-exact (within 1e-6 of the float64 OKLab,
    tests/), with only multiply, add and IEEE divide (no libm powf, whose last bit
    differs between CPU and GPU libraries). As powf the cube roots were 85 % of the
    conversion; this one is ~1.45x faster. LMS is floored at 1e-30 (black: L ~ 1e-10),
    so there is no branch. Written out three times in one plain function, so that it
    compiles for both backends unchanged (filters.gpu_ptx_check compiles it for a device).
    """
    lr = lut[r]
    lg = lut[g]
    lb = lut[b]
    tiny = np.float32(1e-30)
    two = np.float32(2.0)
    three = np.uint32(3)
    magic = np.uint32(CBRT_MAGIC)
    x = (np.float32(0.4122214708) * lr + np.float32(0.5363325363) * lg
         + np.float32(0.0514459929) * lb)
    x = max(x, tiny)
    y = np.uint32(np.float32(x).view(np.uint32) // three + magic).view(np.float32)
    y3 = y * y * y
    y = y * (y3 + two * x) / (two * y3 + x)
    y3 = y * y * y
    lc = y * (y3 + two * x) / (two * y3 + x)
    x = (np.float32(0.2119034982) * lr + np.float32(0.6806995451) * lg
         + np.float32(0.1073969566) * lb)
    x = max(x, tiny)
    y = np.uint32(np.float32(x).view(np.uint32) // three + magic).view(np.float32)
    y3 = y * y * y
    y = y * (y3 + two * x) / (two * y3 + x)
    y3 = y * y * y
    mc = y * (y3 + two * x) / (two * y3 + x)
    x = (np.float32(0.0883024619) * lr + np.float32(0.2817188376) * lg
         + np.float32(0.6299787005) * lb)
    x = max(x, tiny)
    y = np.uint32(np.float32(x).view(np.uint32) // three + magic).view(np.float32)
    y3 = y * y * y
    y = y * (y3 + two * x) / (two * y3 + x)
    y3 = y * y * y
    sc = y * (y3 + two * x) / (two * y3 + x)
    ok_l = (np.float32(0.2104542553) * lc + np.float32(0.7936177850) * mc
            - np.float32(0.0040720468) * sc)
    ok_a = (np.float32(1.9779984951) * lc - np.float32(2.4285922050) * mc
            + np.float32(0.4505937099) * sc)
    ok_b = (np.float32(0.0259040371) * lc + np.float32(0.7827717662) * mc
            - np.float32(0.8086757660) * sc)
    return ok_l, ok_a, ok_b


oklab_from_srgb8_cpu = njit(inline="always", cache=True)(oklab_from_srgb8)
# Kernels that inline the conversion: numpy's error model, so that the Halley steps'
# divisions (whose divisor is > 0 by construction) carry no Python zero-division check.
NJIT_CONVERT = dict(NJIT_SERIAL, error_model="numpy")
NJIT_CONVERT_PARALLEL = dict(NJIT_PARALLEL, error_model="numpy")


CHUNK = 256   # pixels converted per batch by oklab_span


@njit(**NJIT_CONVERT)
def oklab_span(pixels, lut, i0, i1, lms, out):
    """out[i] = oklab_from_srgb8 of pixels[i] for i in i0..i1 ((n, C) uint8 pixels, (n, 3)
    float32 out), bit for bit, but in batches of CHUNK: table lookups and the first
    matrix, then each LMS component's cube roots in one loop without lookups or
    branches (the compiler turns it into vector instructions), then the second matrix -
    3x faster than pixel by pixel. `lms`: (3, CHUNK) float32 scratch."""
    tiny = np.float32(1e-30)
    two = np.float32(2.0)
    three = np.uint32(3)
    magic = np.uint32(CBRT_MAGIC)
    for start in range(i0, i1, CHUNK):
        m = min(CHUNK, i1 - start)
        for i in range(m):
            lr = lut[pixels[start + i, 0]]
            lg = lut[pixels[start + i, 1]]
            lb = lut[pixels[start + i, 2]]
            lms[0, i] = (np.float32(0.4122214708) * lr + np.float32(0.5363325363) * lg
                         + np.float32(0.0514459929) * lb)
            lms[1, i] = (np.float32(0.2119034982) * lr + np.float32(0.6806995451) * lg
                         + np.float32(0.1073969566) * lb)
            lms[2, i] = (np.float32(0.0883024619) * lr + np.float32(0.2817188376) * lg
                         + np.float32(0.6299787005) * lb)
        for c in range(3):
            row = lms[c]
            for i in range(m):  # oklab_from_srgb8's cube root, written once more
                x = max(row[i], tiny)
                y = np.uint32(np.float32(x).view(np.uint32) // three + magic).view(np.float32)
                y3 = y * y * y
                y = y * (y3 + two * x) / (two * y3 + x)
                y3 = y * y * y
                row[i] = y * (y3 + two * x) / (two * y3 + x)
        for i in range(m):
            lc, mc, sc = lms[0, i], lms[1, i], lms[2, i]
            out[start + i, 0] = (np.float32(0.2104542553) * lc + np.float32(0.7936177850) * mc
                                 - np.float32(0.0040720468) * sc)
            out[start + i, 1] = (np.float32(1.9779984951) * lc - np.float32(2.4285922050) * mc
                                 + np.float32(0.4505937099) * sc)
            out[start + i, 2] = (np.float32(0.0259040371) * lc + np.float32(0.7827717662) * mc
                                 - np.float32(0.8086757660) * sc)


@njit(**NJIT_CONVERT_PARALLEL)
def _oklab_parallel(pixels, lut, out, parts):
    n = pixels.shape[0]
    for b in prange(parts):
        oklab_span(pixels, lut, b * n // parts, (b + 1) * n // parts,
                   np.empty((3, CHUNK), np.float32), out)


PARALLEL_MIN_PIXELS = 1 << 16   # below this one thread beats waking the others


def image_to_oklab(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 OKLab of a uint8 (H, W, 3|4) image, with the kernels' arithmetic.
    Large images are split over threads (the conversion is ~4 ns a pixel)."""
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    pixels = image.reshape(h * w, image.shape[2])
    out = np.empty((h * w, 3), np.float32)
    if h * w >= PARALLEL_MIN_PIXELS:
        _oklab_parallel(pixels, LINEAR_LUT, out, 4 * numba.get_num_threads())
    else:
        oklab_span(pixels, LINEAR_LUT, 0, h * w, np.empty((3, CHUNK), np.float32), out)
    return out.reshape(h, w, 3)


def palette_oklab(palette: np.ndarray) -> np.ndarray:
    """(k, 3) float32 OKLab of a uint8 palette, with the kernels' arithmetic (so a pixel
    whose colour is in the palette is at distance exactly 0 from its entry)."""
    pal = np.ascontiguousarray(palette, dtype=np.uint8).reshape(-1, 1, 3)
    return image_to_oklab(pal).reshape(-1, 3)
