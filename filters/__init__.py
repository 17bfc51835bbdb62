"""Pixelfleet's image engine: registry, safe image I/O, numba CPU and CUDA kernels.

Importing the package chooses numba's threading layer, before numba is imported where
possible, so every process of the fleet makes the same choice (docs/filters.md):

The layer here is GNU OpenMP ('omp'); TBB is not installed; 'workqueue' is available.
- 'omp' is thread-safe: the API's "threading" batch mode runs kernels from several
  threads at once. It is NOT fork-safe: a child forked after a parallel kernel ran dies
  with "fork() called from a process already using GNU OpenMP".
- 'workqueue' is fork-safe but aborts the process when two threads call a parallel
  kernel at the same time.
Decision (the lead's): 'omp'. Worker processes never fork after kernels run (RQ
SimpleWorker), the API's multiprocessing mode uses the spawn context, and gunicorn does
not preload the app. NUMBA_THREADING_LAYER in the environment overrides this.

(This lives here rather than in a `filters/threading.py`: such a module would shadow the
standard library's `threading` for anyone running a script from inside filters/.)
"""
from __future__ import annotations

import os
import sys

THREADING_LAYER = "omp"


def choose_threading_layer() -> str:
    """Set the layer unless the operator chose one; returns the layer in force."""
    chosen = os.environ.get("NUMBA_THREADING_LAYER", "").strip()
    if chosen:
        return chosen
    # The variable reaches numba.config when numba is imported later and is inherited by
    # spawned children; if numba is already loaded, set its config too.
    os.environ["NUMBA_THREADING_LAYER"] = THREADING_LAYER
    config = sys.modules.get("numba.core.config")
    if config is not None:
        config.THREADING_LAYER = THREADING_LAYER
    return THREADING_LAYER


choose_threading_layer()
