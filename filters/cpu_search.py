"""The minimum of a short array, for the nearest-colour searches of the palette code.

Every search (palettes_map._search, palettes_fit's k-means assignment, the reservation
costs in palettes_salience) computes all distances first - a loop the compiler turns into
vector instructions - and then needs their minimum and its first index. A plain running
minimum is one chain of dependent min instructions (4 cycles each: ~60 cycles for 16
colours); four independent running minima cut the chain to a quarter. A minimum is exact
in any order, so the answer is the same.
"""
from __future__ import annotations

from numba import njit


@njit(inline="always", cache=True)
def smallest(values):
    """min(values) of a non-empty 1-D array, with four independent running minima."""
    m0 = m1 = m2 = m3 = values[0]
    n = values.shape[0]
    j = 0
    while j + 4 <= n:
        m0 = min(m0, values[j])
        m1 = min(m1, values[j + 1])
        m2 = min(m2, values[j + 2])
        m3 = min(m3, values[j + 3])
        j += 4
    while j < n:
        m0 = min(m0, values[j])
        j += 1
    return min(min(m0, m1), min(m2, m3))
