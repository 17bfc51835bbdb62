"""Pixelfleet's image engine: registry, safe image I/O, numba CPU and CUDA kernels.

Importing the package chooses numba's threading layer (before numba is imported, when
possible) so every process of the fleet makes the same choice; see `filters.threading`.
"""
from filters.threading import choose_threading_layer

choose_threading_layer()
