"""Deterministic synthetic sample images, so a demo or a load test needs no upload.

The picture has something for every filter to act on: smooth gradients (brightness,
contrast, grayscale), hard-edged discs and tiles (edges, pixelate), fine stripes and
glyph-like marks (blur, sharpen), a seeded noise panel (blur visibly smooths it) and a
colour wheel (palettes). Everything is drawn in relative coordinates with numpy from a
fixed seed, so `small` is a scaled-down twin of `4k`, and the bytes are identical on
every run and machine (same numpy/Pillow versions). Generated once per process.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from filters.io import encode_image

SAMPLE_SIZES: dict[str, tuple[int, int]] = {"4k": (3840, 2160), "small": (640, 360)}
SAMPLE_NAMES: tuple[str, ...] = tuple(SAMPLE_SIZES)
DEFAULT_SAMPLE = "4k"
SEED = 20240611


def _check_name(name: str) -> tuple[int, int]:
    if name not in SAMPLE_SIZES:
        raise KeyError(f"unknown sample {name!r} (known: {', '.join(SAMPLE_NAMES)})")
    return SAMPLE_SIZES[name]


@lru_cache(maxsize=None)
def _sample(name: str) -> np.ndarray:
    width, height = _check_name(name)
    image = draw_sample(width, height)
    image.setflags(write=False)  # shared by every caller in this process
    return image


def sample_array(name: str = DEFAULT_SAMPLE) -> np.ndarray:
    """The sample as an (H, W, 3) uint8 array; a copy, so callers may modify it."""
    return _sample(name).copy()


@lru_cache(maxsize=None)
def sample_png(name: str = DEFAULT_SAMPLE) -> bytes:
    """The sample as PNG bytes (what the API stores and serves)."""
    return encode_image(_sample(name), "png")


def draw_sample(width: int, height: int) -> np.ndarray:
    """Draw the sample picture at any size (deterministic).

    Drawn as three float32 planes (contiguous writes are several times faster than
    writing every third float), each shape limited to its bounding box, then interleaved
    once at the end: about 0.3 s for 4k here.
    """
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    planes = np.empty((3, height, width), np.float32)
    # Background: diagonal gradients, one per channel.
    planes[0] = 40 + 180 * x
    planes[1] = 30 + 170 * y
    planes[2] = 200 - 75 * x - 75 * y
    scale = height / 360.0  # sizes below are in 'small' pixels

    _colour_wheel(planes, width, height, cx=0.18, cy=0.33, radius=0.25)
    _discs(planes, width, height)
    _tiles(planes, width, height)
    _stripes(planes, width, height, scale)
    _glyphs(planes, width, height, scale)
    _noise_panel(planes, width, height)
    # Every value is in [0, 255] by construction (the noise panel clips itself), so
    # rounding is +0.5 and a truncating cast: no full-image clip needed.
    planes += np.float32(0.5)
    out = np.empty((height, width, 3), np.uint8)
    for c in range(3):
        out[:, :, c] = planes[c]
    return out


def _disc_box(width: int, height: int, cx: float, cy: float, radius: float):
    """Slices of the bounding box of a disc (centre in relative coordinates, radius as a
    fraction of the height), and the pixel offsets from its centre inside that box."""
    r = radius * height
    px, py = cx * width, cy * height
    x0, x1 = max(0, int(px - r) - 1), min(width, int(px + r) + 2)
    y0, y1 = max(0, int(py - r) - 1), min(height, int(py + r) + 2)
    dx = (np.arange(x0, x1, dtype=np.float32) - px)[None, :] / height
    dy = (np.arange(y0, y1, dtype=np.float32) - py)[:, None] / height
    return (slice(y0, y1), slice(x0, x1)), dx, dy


def _colour_wheel(planes, width, height, *, cx, cy, radius) -> None:
    """A hue wheel fading to white in the middle: every hue for the palette fits."""
    box, dx, dy = _disc_box(width, height, cx, cy, radius)
    r = np.sqrt(dx * dx + dy * dy) / radius
    inside = r <= 1.0
    hue = (np.arctan2(dy, dx) / (2 * np.pi) + 0.5) * 6.0
    for channel, offset in enumerate((0.0, 4.0, 2.0)):
        k = (hue + offset) % 6.0
        f = np.clip(np.abs(k - 3.0) - 1.0, 0.0, 1.0)          # HSV to RGB, s=1, v=1
        f = 255 * (1 - r + r * f)                            # white centre
        region = planes[channel][box]
        region[inside] = f[inside]


def _discs(planes, width, height) -> None:
    """Hard-edged discs and a ring: strong edges at every angle."""
    for cx, cy, rad, colour in (
        (0.50, 0.30, 0.16, (230, 60, 50)),
        (0.62, 0.42, 0.10, (40, 200, 90)),
        (0.44, 0.50, 0.08, (250, 230, 60)),
    ):
        box, dx, dy = _disc_box(width, height, cx, cy, rad)
        mask = dx * dx + dy * dy <= rad * rad
        for c in range(3):
            planes[c][box][mask] = colour[c]
    box, dx, dy = _disc_box(width, height, 0.50, 0.30, 0.205)
    d = np.sqrt(dx * dx + dy * dy)
    ring = (d > 0.19) & (d < 0.205)
    for c in range(3):
        planes[c][box][ring] = (20, 20, 30)[c]


def _tiles(planes, width, height) -> None:
    """A checkerboard of coloured tiles in the bottom-left quarter."""
    y0, y1 = int(height * 0.62), int(height * 0.95)
    x0, x1 = int(width * 0.03), int(width * 0.33)
    tile = max(2, height // 24)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    index = ((yy - y0) // tile + (xx - x0) // tile) % 4
    palette = np.array([(250, 250, 250), (15, 15, 15), (200, 40, 160), (30, 120, 220)], np.float32)
    for c in range(3):
        planes[c, y0:y1, x0:x1] = palette[:, c][index]


def _stripes(planes, width, height, scale) -> None:
    """Bars getting finer to the right: blur wipes out the finest, sharpen crisps them."""
    y0, y1 = int(height * 0.05), int(height * 0.14)
    x0 = int(width * 0.70)
    xs = np.arange(width - x0)
    period = np.maximum(2, (12 * scale * (1 - xs / max(1, len(xs))) + 2).astype(np.int64))
    on = (xs % period) < period // 2
    planes[:, y0:y1, x0:] = np.where(on, np.float32(245), np.float32(10))


def _glyphs(planes, width, height, scale) -> None:
    """Lines of seeded glyph-like marks: small dark strokes on a light panel, like text."""
    rng = np.random.default_rng(SEED)
    y0, y1 = int(height * 0.20), int(height * 0.55)
    x0, x1 = int(width * 0.70), int(width * 0.97)
    for c, value in enumerate((235, 232, 220)):
        planes[c, y0:y1, x0:x1] = value
    cell = max(3, int(round(7 * scale)))
    line = cell * 2
    rows = max(1, (y1 - y0 - cell) // line)
    cols = max(1, (x1 - x0 - cell) // cell)
    bits = rng.integers(0, 2, size=(rows, cols, 3, 3), dtype=np.uint8)
    gaps = rng.random((rows, cols)) < 0.18          # spaces between "words"
    stroke = max(1, cell // 3)
    for r in range(rows):
        top = y0 + cell // 2 + r * line
        for gy in range(3):
            for gx in range(3):
                cols_on = np.nonzero((bits[r, :, gy, gx] == 1) & ~gaps[r])[0]
                if cols_on.size == 0:
                    continue
                starts = x0 + cell // 2 + cols_on * cell + gx * stroke
                ys = slice(top + gy * stroke, top + (gy + 1) * stroke)
                for dx in range(stroke):
                    for c, value in enumerate((25, 25, 40)):
                        planes[c, ys, starts + dx] = value


def _noise_panel(planes, width, height) -> None:
    """Seeded Gaussian noise on a mid-grey panel in the bottom-right corner."""
    rng = np.random.default_rng(SEED + 1)
    y0, y1 = int(height * 0.62), int(height * 0.95)
    x0, x1 = int(width * 0.70), int(width * 0.97)
    noise = rng.standard_normal((3, y1 - y0, x1 - x0), dtype=np.float32) * 40
    planes[:, y0:y1, x0:x1] = np.clip(128 + noise, 0, 255)
