"""Deterministic photo-like JPEGs: the inputs an image service really gets, without a download.

Why not the synthetic sample (filters.samples): its flat areas and hard edges compress far
better than a camera photo, so it hides what decoding costs. These pictures are summed
octaves of smooth random fields (a 1/f spectrum, like natural scenes), colour-correlated
channels, soft shading and sensor-like grain, saved as baseline JPEG at quality 90 with
4:2:0 chroma (what cameras and phones write). At 2040x1356 the file is about 0.7 MB, at
6000x4000 about 5 MB, close to real photos of those sizes. Same seed, same bytes (for the
same numpy and Pillow versions). Used by the shrink-on-load fidelity tests and benchmarks.
"""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image

PHOTO_SIZES: dict[str, tuple[int, int]] = {"2k": (2040, 1356), "24mp": (6000, 4000)}
PHOTO_QUALITY = 90
SEED = 20261202
RATIO = 0.7      # detail weakens by this per octave (1/f-like)
OBJECTS = 24     # hard-edged rectangles
GRAIN = 5.0      # sensor-like noise, standard deviation in 8-bit levels


def _upsample(field: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic upsampling of a float32 plane (Pillow's C resampler, one pass)."""
    return np.array(Image.fromarray(field, "F").resize((width, height), Image.BICUBIC), np.float32)


def _pyramid_noise(rng: np.random.Generator, width: int, height: int, ratio: float) -> np.ndarray:
    """1/f-like noise: from a 4-pixel-wide grid up, each level doubles the size and adds
    fresh detail `ratio` times weaker than the level before (a Laplacian pyramid built
    upwards, so the cost is about that of the last level)."""
    sizes = [(width, height)]
    while sizes[-1][0] > 4:
        w, h = sizes[-1]
        sizes.append((max(1, (w + 1) // 2), max(1, (h + 1) // 2)))
    sizes.reverse()
    amplitude = 1.0
    field = rng.uniform(-1.0, 1.0, (sizes[0][1], sizes[0][0])).astype(np.float32)
    for w, h in sizes[1:]:
        amplitude *= ratio
        field = _upsample(field, w, h)
        field += rng.uniform(-amplitude, amplitude, (h, w)).astype(np.float32)
    return field


def _objects(rng: np.random.Generator, luma: np.ndarray) -> None:
    """Hard-edged bright and dark objects (windows, poles, roofs): photos have edges."""
    height, width = luma.shape
    for _ in range(OBJECTS):
        w = int(rng.integers(width // 40, width // 5))
        h = int(rng.integers(height // 40, height // 4))
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        luma[y:y + h, x:x + w] += float(rng.choice((-1.0, 1.0)) * rng.uniform(30.0, 70.0))


def photo_array(width: int, height: int, seed: int = SEED) -> np.ndarray:
    """The (height, width, 3) uint8 picture; about 2 s at 24 MP on one core."""
    rng = np.random.default_rng(seed)
    luma = _pyramid_noise(rng, width, height, RATIO)
    luma *= 70.0
    luma += 128.0
    _objects(rng, luma)
    small_w, small_h = max(2, width // 64), max(2, height // 64)
    tint = [_upsample(rng.uniform(-30.0, 30.0, (small_h, small_w)).astype(np.float32), width, height)
            for _ in range(2)]
    out = np.empty((height, width, 3), np.uint8)
    for channel, (a, b) in enumerate(((1.0, 0.0), (-0.5, 1.0), (0.0, -1.0))):
        plane = rng.standard_normal((height, width), dtype=np.float32)   # sensor grain
        plane *= GRAIN
        plane += luma
        if a:
            plane += a * tint[0]
        if b:
            plane += b * tint[1]
        np.clip(plane, 0.0, 255.0, out=plane)
        out[:, :, channel] = plane
    return out


@lru_cache(maxsize=4)
def photo_jpeg(width: int, height: int, seed: int = SEED, quality: int = PHOTO_QUALITY) -> bytes:
    """The picture as a quality-90, 4:2:0 baseline JPEG (cached per process)."""
    out = io.BytesIO()
    Image.fromarray(photo_array(width, height, seed), "RGB").save(out, "JPEG", quality=quality,
                                                                  subsampling="4:2:0")
    return out.getvalue()


def named_photo(name: str) -> bytes:
    """`2k` (2040x1356) or `24mp` (6000x4000) as JPEG bytes."""
    if name not in PHOTO_SIZES:
        raise KeyError(f"unknown photo {name!r} (known: {', '.join(PHOTO_SIZES)})")
    return photo_jpeg(*PHOTO_SIZES[name])
