"""Photo-like JPEGs, generated deterministically: the e2e benchmark's inputs.

Why generated, not downloaded: the benchmark must run on a machine with no network and
give the same bytes every time. Why "photo-like": a flat or purely random image lies
about JPEG cost in both directions (a flat one decodes too fast, white noise compresses
to an unrealistic size). These have what photos have: smooth large-scale shading
(fractal value noise over a few octaves), hard edges (a horizon and some discs), colour,
and fine sensor-like grain, so a 6000×4000 one at quality 90 weighs about what a
24 MP camera JPEG does (several MB).
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SIZES = {"2k": (2040, 1356), "24mp": (6000, 4000)}
SMOKE_SIZES = {"small": (640, 426), "medium": (1024, 680)}
QUALITY = 90


def _octave(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Smooth noise: a coarse random grid upsampled bicubically to the full size."""
    grid_w = max(2, cells)
    grid_h = max(2, round(cells * height / width))
    coarse = rng.random((grid_h, grid_w), dtype=np.float32)
    layer = Image.fromarray(coarse, mode="F").resize((width, height), Image.BICUBIC)
    return np.asarray(layer, dtype=np.float32)


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """An RGB image of `width`×`height` with photo-like structure, the same for a seed."""
    rng = np.random.default_rng(seed)
    shade = sum(_octave(rng, width, height, 4 * 2 ** i) / 2 ** i for i in range(6))
    shade = (shade - shade.min()) / max(float(np.ptp(shade)), 1e-6)
    tint = np.stack([_octave(rng, width, height, 3) for _ in range(3)], axis=-1)
    sky = np.linspace(1.0, 0.55, height, dtype=np.float32)[:, None, None]
    pixels = (0.55 * shade[..., None] + 0.45 * tint) * sky * 255.0
    horizon = int(height * 0.62)                                       # ground: a hard edge, textured
    fine = _octave(rng, width, height - horizon, 160)
    ground = (0.35 + 0.5 * shade[horizon:, :, None] + 0.3 * fine[..., None]) * np.array([70, 92, 48], np.float32)
    pixels[horizon:] = ground
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(12):                                                # objects with outlines
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(max(4, width // 60), max(5, width // 12)))
        colour = tuple(int(c) for c in rng.integers(30, 230, 3))
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(20, 20, 20), width=max(1, r // 12))
    detail = np.asarray(image, dtype=np.int16)
    grain = rng.normal(0.0, 6.0, detail.shape[:2]).astype(np.int16)[..., None]   # luminance grain
    return Image.fromarray(np.clip(detail + grain, 0, 255).astype(np.uint8), "RGB")


def photo_jpeg(width: int, height: int, seed: int = 0, quality: int = QUALITY) -> bytes:
    buffer = io.BytesIO()
    photo(width, height, seed).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def ensure_photos(folder: Path, sizes: dict[str, tuple[int, int]]) -> dict[str, Path]:
    """`folder/<name>.jpg` for every size, generated once (same bytes every time)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for seed, (name, (width, height)) in enumerate(sorted(sizes.items())):
        path = folder / f"{name}-{width}x{height}-q{QUALITY}.jpg"
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(photo_jpeg(width, height, seed=seed))
            tmp.replace(path)
        paths[name] = path
    return paths
