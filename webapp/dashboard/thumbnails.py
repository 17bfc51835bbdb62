"""Small previews of a task's input and result for the dashboard's task and playground pages.

Decoded through filters.io (the engine's limits and EXIF handling apply, so a hostile
stored image is refused the same way as at submit), as small as the preview allows
(shrink-on-load: a 24 MP JPEG is decoded at 1/8 or 1/4 scale), shrunk with Pillow, sent
as PNG.
"""
from __future__ import annotations

import io

from PIL import Image

from filters.io import decode_scaled
from filters.registry import validate_steps
from filters.shrink import ShrinkPlan, plan_shrink

MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 32, 1024, 320


def thumbnail_png(data: bytes, size: int = DEFAULT_SIZE) -> bytes:
    """PNG bytes of `data` fitted into size×size (never enlarged), aspect kept."""
    def fit(height: int, width: int) -> ShrinkPlan | None:
        side = {"width": size} if width >= height else {"height": size}
        steps = validate_steps([{"filter": "resize", "params": {**side, "interpolation": "lanczos"}}])
        return plan_shrink(steps, height, width)

    pixels = decode_scaled(data, fit).image
    image = Image.fromarray(pixels)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=3)
    return buffer.getvalue()
