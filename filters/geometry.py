"""Target-size arithmetic for resize, in one place.

The API (to reject impossible requests early), the CPU and GPU kernels and the benchmark
all import `resize_target`, so a width-only request means the same size everywhere.
"""
from __future__ import annotations

import math

from filters.errors import FilterFailed


def _round_half_up(value: float) -> int:
    """Round .5 upwards (Python's round() is banker's rounding, which surprises users)."""
    return int(math.floor(value + 0.5))


def _megapixel_limit() -> float:
    """The engine's megapixel limit (filters.io is the single source of truth)."""
    try:
        from filters.io import MAX_MEGAPIXELS
    except ImportError:  # io.py not importable: fall back to the documented default
        return 50.0
    return float(MAX_MEGAPIXELS)


def resize_target(
    h: int,
    w: int,
    width: int | None = None,
    height: int | None = None,
    scale: float | None = None,
) -> tuple[int, int]:
    """(target_height, target_width) for an (h, w) image.

    Width alone or height alone keeps the aspect ratio (rounded half up, at least 1 pixel);
    both give exactly that size; scale multiplies both. Raises FilterFailed when the request
    is contradictory, empty, or the target exceeds the megapixel limit.
    """
    if h < 1 or w < 1:
        raise FilterFailed(f"resize: the image has no pixels ({w}x{h})")
    if scale is not None and (width is not None or height is not None):
        raise FilterFailed("resize: give either scale or width/height, not both")
    if scale is None and width is None and height is None:
        raise FilterFailed("resize: give width, height or scale")
    if scale is not None:
        if not scale > 0:
            raise FilterFailed(f"resize.scale must be positive, got {scale}")
        th, tw = _round_half_up(h * scale), _round_half_up(w * scale)
    elif width is not None and height is not None:
        th, tw = int(height), int(width)
    elif width is not None:
        tw = int(width)
        th = _round_half_up(h * tw / w)
    else:
        th = int(height)
        tw = _round_half_up(w * th / h)
    if (width is not None and width < 1) or (height is not None and height < 1):
        raise FilterFailed(f"resize: width and height must be at least 1, got {width}x{height}")
    th, tw = max(1, th), max(1, tw)
    limit = _megapixel_limit()
    if th * tw > limit * 1_000_000:
        raise FilterFailed(
            f"resize: target {tw}x{th} is {th * tw / 1e6:.1f} megapixels, "
            f"above the limit of {limit:g}"
        )
    return th, tw
