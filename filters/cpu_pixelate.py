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
def _upscale_nearest(small, block, blocks, out):
    """out[y, x] = small[y // block, x // block]: build one row per band, copy it down."""
    h, w, channels = out.shape
    sw = small.shape[1]
    for b in prange(blocks.shape[0] - 1):
        for by in range(blocks[b], blocks[b + 1]):
            y0 = by * block
            y1 = min(y0 + block, h)
            first = out[y0]
            srow = small[by]
            for bx in range(sw):
                x0 = bx * block
                x1 = min(x0 + block, w)
                for x in range(x0, x1):
                    for c in range(channels):
                        first[x, c] = srow[bx, c]
            for y in range(y0 + 1, y1):
                out[y] = first


def block_average(image: np.ndarray, block_size: int) -> np.ndarray:
    """The (ceil(H/b), ceil(W/b), C) image of block means (alpha averaged too)."""
    image = check_image(image, "pixelate")
    rows = -(-image.shape[0] // block_size)
    return block_mean(image, block_size, block_size, row_blocks(rows, numba.get_num_threads()))


def upscale_nearest(small: np.ndarray, block_size: int, height: int, width: int) -> np.ndarray:
    """Each small pixel repeated block_size times both ways, cropped to (height, width)."""
    small = np.ascontiguousarray(small)
    out = np.empty((height, width, small.shape[2]), np.uint8)
    _upscale_nearest(small, block_size, row_blocks(small.shape[0], numba.get_num_threads()), out)
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
