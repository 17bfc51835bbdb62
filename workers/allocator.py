"""Keep freed memory in the heap of a worker or an API process instead of handing it
back to the kernel (workers/__main__.py and webapp/gunicorn.conf.py's post_fork call it).

Why: every task allocates the same few large buffers (the decoded image, the resize
rows, the encoded result) and frees them at its end. With glibc's defaults, buffers
over the mmap threshold are mapped fresh and unmapped again, and a heap top over the
trim threshold is given back, so the next task touches new pages: about 1,000 page
faults (4 MB of zeroed pages) per 2040×1356 thumbnail. Measured with the `make run`
fleet, 8 clients: worker CPU 19.7 -> 17.7 ms per image and 57 -> 62 images/s, page
faults 983 -> 0 per image. The cost: a worker's RSS stays at its largest recent task
(WORKER_MAX_RSS_MB still stops one that grows past its ceiling).

The API receives the same kind of buffers: an upload joined into one bytes object and
the file sliced out of it. Without this each 6 MB upload was about 4,500 page faults,
half of the API's CPU for receiving it (14 -> 6.5 ms per upload, measured;
tests/api/test_asgi_submit.py counts the faults of the real API processes). An API
process keeps at most its busiest moment's buffers: concurrent uploads, each within
PIXELFLEET_MAX_REQUEST_BYTES.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1      # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024     # glibc's largest allowed value on 64-bit
TRIM_THRESHOLD = 512 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False where not glibc,
    or where the operator tuned malloc already (MALLOC_*_ or GLIBC_TUNABLES)."""
    if any(name.startswith("MALLOC_") for name in os.environ) or "malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
