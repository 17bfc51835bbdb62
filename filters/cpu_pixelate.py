"""pixelate on the CPU: block averaging, the small-image palette stage, nearest upscale.

Block averaging is filters.cpu_blocks (shared with resize's integer-factor area); the upscale writes the first row of
each band and copies it to the band's other rows. Partial blocks at the right and bottom
edges average the pixels they have. Alpha is block-averaged and never quantised.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from filters.cpu_common import NJIT_PARALLEL, check_image, row_blocks
from filters.cpu_blocks import block_mean
from filters.errors import FilterFailed
from filters.palettes import DITHERS, METHODS, PALETTE_CHOICES, quantize_small


@njit(**NJIT_PARALLEL)
def _upscale_nearest(small, channels, block, blocks, out):
    """out[y, x] = small[y // block, x // block] on (rows, W*C) views: build the first row
    of each band tap-outer (no per-pixel division or short inner loops), copy it down."""
    h, row_len = out.shape
    w = row_len // channels
    sw = small.shape[1] // channels
    full = w // block
    for b in prange(blocks.shape[0] - 1):
        for by in range(blocks[b], blocks[b + 1]):
            y0 = by * block
            y1 = min(y0 + block, h)
            first = out[y0]
            srow = small[by]
            if channels == 3:
                for k in range(block):
                    for bx in range(full):
                        p = (bx * block + k) * 3
                        q = bx * 3
                        first[p] = srow[q]
                        first[p + 1] = srow[q + 1]
                        first[p + 2] = srow[q + 2]
            else:
                for k in range(block):
                    for bx in range(full):
                        p = (bx * block + k) * channels
                        q = bx * channels
                        for c in range(channels):
                            first[p + c] = srow[q + c]
            for x in range(full * block, w):  # partial block at the right edge
                for c in range(channels):
                    first[x * channels + c] = srow[(sw - 1) * channels + c]
            for y in range(y0 + 1, y1):
                row = out[y]
                for j in range(row_len):
                    row[j] = first[j]


def block_average(image: np.ndarray, block_size: int) -> np.ndarray:
    """The (ceil(H/b), ceil(W/b), C) image of block means (alpha averaged too)."""
    image = check_image(image, "pixelate")
    rows = -(-image.shape[0] // block_size)
    return block_mean(image, block_size, block_size, row_blocks(rows, numba.get_num_threads()))


def upscale_nearest(small: np.ndarray, block_size: int, height: int, width: int) -> np.ndarray:
    """Each small pixel repeated block_size times both ways, cropped to (height, width)."""
    small = np.ascontiguousarray(small)
    sh, sw, c = small.shape
    out = np.empty((height, width, c), np.uint8)
    _upscale_nearest(small.reshape(sh, sw * c), c, block_size,
                     row_blocks(sh, numba.get_num_threads()), out.reshape(height, width * c))
    return out


def _check_choice(value: object, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise FilterFailed(f"pixelate.{name} must be one of {', '.join(choices)}, got {value!r}")


def _check_int(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise FilterFailed(f"pixelate.{name} must be an integer between {low} and {high}, got {value!r}")
    return int(value)


def pixelate(
    image: np.ndarray,
    *,
    block_size: int = 8,
    palette: str = "adaptive",
    palette_size: int = 16,
    method: str = "kmeans",
    dither: str = "none",
    outline: bool = False,
    upscale: bool = True,
) -> np.ndarray:
    """Pixel art: block means, optional palette (fitted or named) with dithering and a dark
    outline, then nearest upscale to the input size (or the small image if upscale=False)."""
    image = check_image(image, "pixelate")
    block_size = _check_int(block_size, "block_size", 1, 256)
    palette_size = _check_int(palette_size, "palette_size", 2, 256)
    _check_choice(palette, "palette", PALETTE_CHOICES)
    _check_choice(method, "method", METHODS)
    _check_choice(dither, "dither", DITHERS)
    small = block_average(image, block_size)
    small = quantize_small(
        small, palette=palette, palette_size=palette_size, method=method,
        dither=dither, outline_edges=bool(outline),
    )
    if not upscale:
        return small
    return upscale_nearest(small, block_size, image.shape[0], image.shape[1])
