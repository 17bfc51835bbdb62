"""Palettes for pixelate: the named palettes and the small-image stage as one call.

Everything here works on the SMALL (block-averaged) image, which is block_size^2 times
smaller than the input, so the CPU and the GPU paths share it: the GPU path averages
blocks and upscales on the device and calls `quantize_small` (or the pieces re-exported
below) on the host in between. Fitting lives in palettes_fit, mapping and dithering in
palettes_map.
"""
from __future__ import annotations

import numpy as np

from filters.cpu_common import LUMA_B, LUMA_G, LUMA_R  # noqa: F401  (re-exported)
from filters.errors import FilterFailed
from filters.palettes_fit import (  # noqa: F401  (re-exported)
    METHODS,
    fit_palette,
    kmeans,
    median_cut,
)
from filters.palettes_map import (  # noqa: F401  (re-exported)
    DITHERS,
    OUTLINE_DARKEN,
    OUTLINE_THRESHOLD,
    adaptive_diffusion_map,
    adaptive_floyd_steinberg,
    bayer_matrix,
    bayer_strength,
    error_diffusion,
    floyd_steinberg,
    map_to_palette,
    ordered_dither,
    outline,
)

NAMED_PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "gameboy": ((15, 56, 15), (48, 98, 48), (139, 172, 15), (155, 188, 15)),
    "pico-8": (
        (0, 0, 0), (29, 43, 83), (126, 37, 83), (0, 135, 81),
        (171, 82, 54), (95, 87, 79), (194, 195, 199), (255, 241, 232),
        (255, 0, 77), (255, 163, 0), (255, 236, 39), (0, 228, 54),
        (41, 173, 255), (131, 118, 156), (255, 119, 168), (255, 204, 170),
    ),
    "cga": ((0, 0, 0), (85, 255, 255), (255, 85, 255), (255, 255, 255)),
    "grayscale-4": ((0, 0, 0), (85, 85, 85), (170, 170, 170), (255, 255, 255)),
}
PALETTE_CHOICES = ("adaptive", "none", *NAMED_PALETTES)
# Error diffusion to a FITTED palette re-fits it to the dithered result this many times
# (palettes_map.error_diffusion): measured in make bench-pixelart.
DITHER_REFITS = 1


def named_palette(name: str) -> np.ndarray:
    """The named palette as a (k, 3) uint8 array (a fresh copy)."""
    try:
        return np.array(NAMED_PALETTES[name], dtype=np.uint8)
    except KeyError:
        raise FilterFailed(
            f"pixelate.palette must be one of {', '.join(PALETTE_CHOICES)}, got {name!r}"
        ) from None


def resolve_palette(small: np.ndarray, palette: str, palette_size: int, method: str) -> np.ndarray | None:
    """The palette to map to: None for "none", fitted for "adaptive", else the named one."""
    if palette == "none":
        return None
    if palette == "adaptive":
        return fit_palette(small, palette_size, method)
    return named_palette(palette)


def apply_palette(small: np.ndarray, colours: np.ndarray, dither: str = "none") -> np.ndarray:
    """The small image mapped to `colours` (OKLab nearest), dithered as asked; alpha kept."""
    if dither == "floyd-steinberg":
        return floyd_steinberg(small, colours)
    if dither == "floyd-steinberg-adaptive":
        return adaptive_floyd_steinberg(small, colours)
    if dither == "bayer":
        return ordered_dither(small, colours)
    if dither == "none":
        return map_to_palette(small, colours)
    raise FilterFailed(f"pixelate.dither must be one of {', '.join(DITHERS)}, got {dither!r}")


def apply_fitted_palette(small: np.ndarray, colours: np.ndarray, dither: str = "none"
                         ) -> tuple[np.ndarray, np.ndarray]:
    """apply_palette for an adaptive (fitted) palette: with error diffusion the palette is
    re-fitted to the dithered result (DITHER_REFITS times). Returns (the mapped image, the
    palette it uses)."""
    if dither in ("floyd-steinberg", "floyd-steinberg-adaptive"):
        return error_diffusion(small, colours, dither == "floyd-steinberg-adaptive",
                               DITHER_REFITS)
    return apply_palette(small, colours, dither), colours


def quantize_small(
    small: np.ndarray,
    *,
    palette: str = "adaptive",
    palette_size: int = 16,
    method: str = "kmeans",
    dither: str = "none",
    outline_edges: bool = False,
) -> np.ndarray:
    """The whole small-image stage of pixelate: palette, mapping/dithering, outline."""
    if dither not in DITHERS:
        raise FilterFailed(f"pixelate.dither must be one of {', '.join(DITHERS)}, got {dither!r}")
    small = np.ascontiguousarray(small)
    colours = resolve_palette(small, palette, palette_size, method)
    if colours is not None and palette == "adaptive":
        small, colours = apply_fitted_palette(small, colours, dither)
    elif colours is not None:
        small = apply_palette(small, colours, dither)
    if outline_edges:
        small = outline(small, colours)
    return small
