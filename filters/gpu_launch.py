"""Shared plumbing for the numba.cuda kernels: launch shapes and small device helpers.

Every GPU kernel in filters/gpu_*.py uses grid-stride loops over (row, column), so the
launch shape only decides how much parallelism a launch gets, never correctness. That
lets the CUDA simulator (tests, NUMBA_ENABLE_CUDASIM=1) run tiny grids - each simulated
thread is a Python thread - while a real device gets a full grid.

Importing this module imports numba.cuda but never touches the driver: kernels compile
lazily on first launch and nothing here queries a device or creates a context.
"""
from __future__ import annotations

import math

import numpy as np
from numba import config as numba_config
from numba import cuda

from filters.cpu_common import reflect101 as cpu_reflect101
from filters.errors import FilterFailed

# Threads per block on a real device: x runs along image columns (coalesced loads).
DEVICE_BLOCK = (32, 8)
# Upper bound on blocks per grid dimension; grid-stride loops cover the rest.
DEVICE_MAX_BLOCKS = 1024
# The simulator runs every thread as a Python thread: keep grids tiny but still more than
# one block and more than one thread per axis, so the stride logic is exercised.
SIM_BLOCK = (4, 4)
SIM_BLOCKS = (2, 2)
# Reduction kernels use one shared-memory slot per thread: a compile-time constant that
# must be >= the threads of a block (DEVICE_BLOCK has 256).
REDUCE_SLOTS = 256
for _block in (DEVICE_BLOCK, SIM_BLOCK):  # the tree reduction needs a power of two <= slots
    _n = _block[0] * _block[1]
    assert _n <= REDUCE_SLOTS and _n & (_n - 1) == 0, f"bad block shape {_block}"


def simulated() -> bool:
    """True when numba.cuda is the CPU simulator (tests), not a real device."""
    return bool(numba_config.ENABLE_CUDASIM)


def launch_2d(height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(blocks, threads) for a grid-stride kernel over a height x width domain.

    Threads' x axis walks columns, y walks rows (cuda.grid(2) returns (x, y)).
    """
    if simulated():
        return SIM_BLOCKS, SIM_BLOCK
    bx, by = DEVICE_BLOCK
    blocks = (
        max(1, min(DEVICE_MAX_BLOCKS, math.ceil(width / bx))),
        max(1, min(DEVICE_MAX_BLOCKS, math.ceil(height / by))),
    )
    return blocks, DEVICE_BLOCK


def check_device_image(image, filter_name: str):
    """The device image if it is (H, W, 3|4) uint8 with pixels, else FilterFailed (as the
    CPU kernels' check_image does for host arrays)."""
    shape = getattr(image, "shape", None)
    dtype = getattr(image, "dtype", None)
    if shape is None or len(shape) != 3 or shape[2] not in (3, 4) or dtype != np.uint8:
        raise FilterFailed(
            f"{filter_name}: expected an (H, W, 3|4) uint8 device image, got "
            f"{type(image).__name__} shape={shape} dtype={dtype}")
    if shape[0] < 1 or shape[1] < 1:
        raise FilterFailed(f"{filter_name}: the image has no pixels (shape {shape})")
    return image


def device_like(height: int, width: int, channels: int, dtype=np.uint8):
    """An uninitialised device array (H, W, C) - every kernel writes all of its output."""
    return cuda.device_array((height, width, channels), dtype=dtype)


def upload(image: np.ndarray):
    """Copy a host image to the device once (the pipeline calls this before the steps)."""
    return cuda.to_device(np.ascontiguousarray(image))


def download(device_image) -> np.ndarray:
    """Copy a device image back to the host once (after the last step)."""
    return device_image.copy_to_host()


def synchronize() -> None:
    """Wait for every queued kernel; timings are meaningless without it."""
    cuda.synchronize()


# The same index rule as the CPU's tables, compiled as a device function.
reflect101 = cuda.jit(device=True, inline=True)(cpu_reflect101)


@cuda.jit(device=True, inline=True)
def to_u8(v):
    """Clip a float32 to [0, 255] and round half up - the CPU kernels' uint8 store.

    float32 constants throughout: a bare 0.5 would promote the math to float64.
    """
    if v <= np.float32(0.0):
        return np.uint8(0)
    if v >= np.float32(255.0):
        return np.uint8(255)
    return np.uint8(v + np.float32(0.5))


@cuda.jit(device=True, inline=True)
def luma(r, g, b):
    """ITU-R 601 luma, the weights Pillow's "L" conversion uses."""
    return np.float32(0.299) * r + np.float32(0.587) * g + np.float32(0.114) * b
