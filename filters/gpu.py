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

from filters.gpu_conv import blur, edges, sharpen
from filters.gpu_launch import download, synchronize, upload
from filters.gpu_pixelate import pixelate
from filters.gpu_point import brightness, contrast, grayscale
from filters.gpu_resize import resize

__all__ = [
    "resize", "blur", "brightness", "contrast", "grayscale", "sharpen", "edges",
    "pixelate", "upload", "download", "synchronize",
]
