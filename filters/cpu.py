"""The numba CPU kernels, one public function per filter (keyword-only parameters named as
in filters.registry). Each takes and returns a C-contiguous uint8 (H, W, 3|4) array and
raises filters.errors.FilterFailed on bad arguments. The kernels live in cpu_*.py by
concern; this module is the one import point for the registry and the benchmark.
"""
from __future__ import annotations

from filters.cpu_conv import blur, edges, sharpen
from filters.cpu_pixelate import block_average, pixelate, upscale_nearest
from filters.cpu_point import brightness, contrast, grayscale, mean_luma
from filters.cpu_resize import resize

__all__ = [
    "resize", "blur", "brightness", "contrast", "grayscale", "sharpen", "edges", "pixelate",
    "block_average", "upscale_nearest", "mean_luma",
]
