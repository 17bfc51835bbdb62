"""Distinct photo-like JPEGs, generated locally: the uploads of the storage runs.

Why not one file sent N times: identical bytes are stored once (content-addressed), so
only distinct uploads show what a fleet keeps per task. Each image is the same smooth
picture with grain (JPEG q90 ≈ 0.4 byte per pixel, like a camera photo) with a corner
block and a tint that depend on the seed.
"""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image


@lru_cache(maxsize=4)
def _base(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(x / 37), 128 + 100 * np.cos(y / 29), (x + y) / (width + height) * 255], -1)
    return np.clip(base + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)


def photo_jpeg(seed: int, width: int = 800, height: int = 530, quality: int = 90) -> bytes:
    """A JPEG distinct per seed, all of about the same size for one width × height."""
    pixels = _base(width, height).copy()
    rng = np.random.default_rng(seed)
    pixels[:24, :24] = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    pixels[:, :, seed % 3] ^= np.uint8(seed % 4)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def parse_size(text: str) -> tuple[int, int]:
    """"2040x1356" → (2040, 1356)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 2040x1356") from None
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise SystemExit(f"--size {text!r}: each side must be 16..8192")
    return width, height
