"""Test images and the comparison the kernel tests share (CPU against references, GPU against CPU)."""
from __future__ import annotations

import numpy as np


def make_image(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Noise plus a horizontal ramp: every level, real edges, distinct alpha."""
    rng = np.random.default_rng(seed)
    h, w, _ = shape
    noise = rng.integers(0, 256, shape)
    ramp = np.linspace(0, 255, w)[None, :, None]
    return ((noise + ramp) / 2).astype(np.uint8)


def maxdiff(a: np.ndarray, b: np.ndarray) -> int:
    """Max absolute difference in uint8 levels; both must be uint8 of the same shape."""
    assert a.shape == b.shape, (a.shape, b.shape)
    assert a.dtype == b.dtype == np.uint8
    return int(np.abs(a.astype(np.int64) - b.astype(np.int64)).max())
