"""GPU pixelate: block averaging, palette mapping, Bayer dithering, outline, upscale.

What runs where, and why:
- Block averaging (one thread per block cell, filters/gpu_blocks.py) and the nearest upscale back to the input
  size are per-pixel work on the full image: GPU.
- Mapping to the palette and Bayer ordered dithering are independent per small pixel:
  GPU, with the same arithmetic as filters.palettes_map._map_rows (the pixel converted to
  OKLab by colour.oklab_from_srgb8, bias strength * bayer[y % 8, x % 8] on L, float32
  squared OKLab distance, lowest index on ties) - the same Python functions compiled as
  device functions.
- The outline (a pixel with a 4-neighbour brighter by OUTLINE_THRESHOLD luma) is a 3x3
  stencil on the small image: GPU.
- Fitting an adaptive palette (k-means / median cut) and error diffusion (both
  Floyd-Steinberg choices) run on the host with filters.palettes, on the SMALL image only
  (<= ceil(H/b) x ceil(W/b) pixels): the fit is Lloyd iterations over at most 32768
  samples, and error diffusion is sequential (each pixel's error feeds its successors), so a GPU gains
  nothing there. Sharing that code also makes the palettes identical on both backends.
  The small image crosses to the host only when one of those two is needed.
Alpha is block-averaged with the colour and never quantised.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from filters import palettes
from filters.errors import FilterFailed
from filters.gpu_blocks import block_mean
from filters.gpu_launch import check_device_image, device_like, launch_2d, luma
from filters.colour import LINEAR_LUT, oklab_from_srgb8, palette_oklab
from filters.palettes_map import nearest_colour

_nearest = cuda.jit(device=True, inline=True)(nearest_colour)
_oklab = cuda.jit(device=True, inline=True)(oklab_from_srgb8)
HOST_DITHERS = ("floyd-steinberg", "floyd-steinberg-adaptive")  # sequential: on the host


@cuda.jit
def _map_palette_kernel(small, palette, pal_lab, lut, thresholds, strength, out):
    """Nearest palette colour (OKLab) after adding strength * thresholds[y % n, x % n]
    to L."""
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    h, w, c = small.shape
    n = thresholds.shape[0]
    for y in range(y0, h, sy):
        for x in range(x0, w, sx):
            ok_l, ok_a, ok_b = _oklab(lut, small[y, x, 0], small[y, x, 1], small[y, x, 2])
            ok_l += strength * thresholds[y % n, x % n]
            best = _nearest(pal_lab, ok_l, ok_a, ok_b)
            out[y, x, 0] = palette[best, 0]
            out[y, x, 1] = palette[best, 1]
            out[y, x, 2] = palette[best, 2]
            for ch in range(3, c):
                out[y, x, ch] = small[y, x, ch]


@cuda.jit(device=True, inline=True)
def _luma_at(img, y, x):
    return luma(np.float32(img[y, x, 0]), np.float32(img[y, x, 1]), np.float32(img[y, x, 2]))


@cuda.jit
def _outline_kernel(small, threshold, dark, darken, use_dark, out):
    """Outline pixels (a 4-neighbour brighter by >= threshold, edges clamped) become the
    palette's darkest colour (use_dark) or their colour scaled by darken."""
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    h, w, c = small.shape
    for y in range(y0, h, sy):
        for x in range(x0, w, sx):
            centre = _luma_at(small, y, x)
            up = _luma_at(small, max(y - 1, 0), x)
            down = _luma_at(small, min(y + 1, h - 1), x)
            left = _luma_at(small, y, max(x - 1, 0))
            right = _luma_at(small, y, min(x + 1, w - 1))
            brighter = max(max(up, down), max(left, right)) - centre
            edge = brighter >= threshold
            for ch in range(3):
                v = small[y, x, ch]
                if edge:
                    if use_dark:
                        v = dark[ch]
                    else:
                        v = np.uint8(np.int32(np.float32(v) * darken + np.float32(0.5)))
                out[y, x, ch] = v
            for ch in range(3, c):
                out[y, x, ch] = small[y, x, ch]


@cuda.jit
def _upscale_kernel(small, block, out):
    """Nearest upscale by whole blocks: out[y, x] = small[y // block, x // block]."""
    x0, y0 = cuda.grid(2)
    sx, sy = cuda.gridsize(2)
    h, w, c = out.shape
    for y in range(y0, h, sy):
        cy = y // block
        for x in range(x0, w, sx):
            cx = x // block
            for ch in range(c):
                out[y, x, ch] = small[cy, cx, ch]


def _launch_on(shape):
    return launch_2d(shape[0], shape[1])


def block_average(image, block_size: int):
    """The (ceil(H/b), ceil(W/b), C) device image of block means."""
    return block_mean(image, block_size, block_size)


def _map(small, colours: np.ndarray, dither: str):
    out = device_like(*small.shape)
    if dither == "bayer":
        thresholds = palettes.bayer_matrix()
        strength = palettes.bayer_strength(colours)
    else:
        thresholds = np.zeros((1, 1), np.float32)
        strength = 0.0
    blocks, threads = _launch_on(small.shape)
    _map_palette_kernel[blocks, threads](small, cuda.to_device(colours),
                                         cuda.to_device(palette_oklab(colours)),
                                         cuda.to_device(LINEAR_LUT),
                                         cuda.to_device(thresholds), np.float32(strength), out)
    return out


def _outline(small, colours: np.ndarray | None):
    out = device_like(*small.shape)
    if colours is not None and len(colours):
        weights = np.array([palettes.LUMA_R, palettes.LUMA_G, palettes.LUMA_B], np.float32)
        dark = colours[int(np.argmin(colours.astype(np.float32) @ weights))].copy()
        use_dark = True
    else:
        dark, use_dark = np.zeros(3, np.uint8), False
    blocks, threads = _launch_on(small.shape)
    _outline_kernel[blocks, threads](small, np.float32(palettes.OUTLINE_THRESHOLD),
                                     cuda.to_device(dark), np.float32(palettes.OUTLINE_DARKEN),
                                     use_dark, out)
    return out


def _check_params(block_size, palette, palette_size, method, dither) -> None:
    """The CPU kernel's argument checks (same messages), before any device work."""
    for name, value, low, high in (("block_size", block_size, 1, 256),
                                   ("palette_size", palette_size, 2, 256)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                or not low <= value <= high:
            raise FilterFailed(
                f"pixelate.{name} must be an integer between {low} and {high}, got {value!r}")
    for name, value, choices in (("palette", palette, palettes.PALETTE_CHOICES),
                                 ("method", method, palettes.METHODS),
                                 ("dither", dither, palettes.DITHERS)):
        if value not in choices:
            raise FilterFailed(
                f"pixelate.{name} must be one of {', '.join(choices)}, got {value!r}")


def pixelate(image, *, block_size: int = 8, palette: str = "adaptive", palette_size: int = 16,
             method: str = "kmeans", dither: str = "none", outline: bool = False,
             upscale: bool = True):
    """Pixel art on the device; see the module docstring for what runs on the host."""
    check_device_image(image, "pixelate")
    _check_params(block_size, palette, palette_size, method, dither)
    small = block_average(image, int(block_size))
    colours = None
    if palette != "none":
        host_small = small.copy_to_host() if palette == "adaptive" or \
            dither in HOST_DITHERS else None
        colours = palettes.resolve_palette(host_small, palette, palette_size, method)
        if dither in HOST_DITHERS and palette == "adaptive":
            host_small, colours = palettes.apply_fitted_palette(host_small, colours, dither)
            small = cuda.to_device(host_small)
        elif dither in HOST_DITHERS:
            small = cuda.to_device(palettes.apply_palette(host_small, colours, dither))
        else:
            small = _map(small, colours, dither)
    if outline:
        small = _outline(small, colours)
    if not upscale:
        return small
    h, w, _ = image.shape
    return upscale_blocks(small, int(block_size), h, w)


def upscale_blocks(small, block_size: int, height: int, width: int):
    """Each small pixel repeated block_size times both ways, cropped to (height, width)."""
    out = device_like(height, width, small.shape[2])
    blocks, threads = launch_2d(height, width)
    _upscale_kernel[blocks, threads](small, np.int32(block_size), out)
    return out
