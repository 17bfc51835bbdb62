"""The numba.cuda kernels of the filter engine, one public function per filter.

Each function has the CPU kernel's name and keyword parameters (filters/cpu.py) but takes
and returns numba device arrays (uint8, H x W x C); filters.pipeline uploads the image
once, chains the steps on the device and downloads once (`upload` / `download` here).
The kernels live in small modules by concern and are re-exported here, which is where
the registry looks them up (lazily: importing the registry never imports numba.cuda).

Importing this module imports numba.cuda but does not initialise CUDA: no context, no
device query; kernels compile on their first launch.
"""
from __future__ import annotations

import time

import numpy as np

from filters.gpu_conv import blur, edges, sharpen
from filters.gpu_launch import download, synchronize, upload
from filters.gpu_pixelate import pixelate, upscale_blocks
from filters.gpu_point import brightness, contrast, grayscale
from filters.gpu_resize import resize

__all__ = [
    "resize", "blur", "brightness", "contrast", "grayscale", "sharpen", "edges",
    "pixelate", "upscale_blocks", "upload", "download", "synchronize", "warm_up",
]


def warm_up() -> float:
    """Launch every kernel once on a tiny image so the first real task does not pay the
    compilation (seconds per kernel); returns the seconds it took. Initialises CUDA: a
    GPU worker calls it after it has decided never to fork (see docs/gpu.md)."""
    start = time.perf_counter()
    image = upload(np.zeros((4, 4, 3), np.uint8))
    resize(image, width=2, interpolation="nearest")
    resize(image, width=3, interpolation="bilinear")
    for step in (blur(image, radius=0.5), sharpen(image, amount=1.0, radius=0.5),
                 brightness(image, factor=1.1), contrast(image, factor=1.1),
                 grayscale(image), edges(image),
                 pixelate(image, block_size=2, palette="cga", dither="bayer", outline=True)):
        del step
    synchronize()
    return time.perf_counter() - start
