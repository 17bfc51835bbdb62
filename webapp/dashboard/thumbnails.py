"""Small previews of a task's input and result for the dashboard's task and playground pages.

Decoded through filters.io (the engine's limits and EXIF handling apply, so a hostile
stored image is refused the same way as at submit), shrunk with Pillow, sent as PNG.
"""
from __future__ import annotations

import io

from PIL import Image

from filters.io import decode_image

MIN_SIZE, MAX_SIZE, DEFAULT_SIZE = 32, 1024, 320


def thumbnail_png(data: bytes, size: int = DEFAULT_SIZE) -> bytes:
    """PNG bytes of `data` fitted into size×size (never enlarged), aspect kept."""
    pixels = decode_image(data)
    image = Image.fromarray(pixels)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=3)
    return buffer.getvalue()
