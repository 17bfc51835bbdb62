"""Helpers for the storage tests and the soak: distinct photo-like uploads, what the images
take in Redis or in a file store, and a small-budget Redis with the fleet's settings."""
from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
import redis
from PIL import Image

from workers import settings


@lru_cache(maxsize=4)
def _base(width: int, height: int) -> np.ndarray:
    """A smooth picture with some grain: compresses like a photo (JPEG q90 ≈ 0.3 byte/pixel)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(x / 37), 128 + 100 * np.cos(y / 29), (x + y) / (width + height) * 255], -1)
    return np.clip(base + rng.normal(0, 8, (height, width, 3)), 0, 255).astype(np.uint8)


def photo_jpeg(seed: int, width: int = 800, height: int = 530) -> bytes:
    """A distinct JPEG per seed (a corner block and a tint differ), all about the same size."""
    pixels = _base(width, height).copy()
    rng = np.random.default_rng(seed)
    pixels[:24, :24] = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    pixels[:, :, seed % 3] ^= np.uint8(seed % 4)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def redis_image_bytes(conn: redis.Redis) -> dict[str, int]:
    """Bytes of input and output images stored in Redis (the values themselves)."""
    inputs = sum(conn.strlen(k) for k in conn.scan_iter(settings.INPUT_KEY.format(digest="*"), count=1000))
    outputs = sum(conn.hstrlen(k, "data") for k in conn.scan_iter(settings.OUTPUT_KEY.format(task_id="*"), count=1000))
    return {"inputs": int(inputs), "outputs": int(outputs)}


def file_image_bytes(root: Path) -> dict[str, int]:
    """Bytes of input and output files under a file store's root."""
    def total(folder: Path) -> int:
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
    return {"inputs": total(root / "inputs"), "outputs": total(root / "outputs")}


def oom_errors(conn: redis.Redis) -> int:
    """How many commands Redis refused for maxmemory (INFO errorstats, Redis ≥ 6.2)."""
    stats = conn.info("errorstats")
    return int((stats.get("errorstat_OOM") or {}).get("count", 0))
