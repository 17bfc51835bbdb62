"""The minimum of a short array, and the nearest two centres, for the palette code's searches.

Every search (palettes_map._search, palettes_fit's k-means assignment, the reservation
costs in palettes_salience) computes all distances first - a loop the compiler turns into
vector instructions - and then needs their minimum and its first index. A plain running
minimum is one chain of dependent min instructions (4 cycles each: ~60 cycles for 16
colours); four independent running minima cut the chain to a quarter. A minimum is exact
in any order, so the answer is the same.
"""
from __future__ import annotations

import numpy as np
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


@njit(inline="always", cache=True)
def nearest_two(p0, p1, p2, c0, c1, c2, dist):
    """Squared distances from (p0, p1, p2) to every centre (c0, c1, c2: one array per axis)
    into `dist`, then (index of the nearest, the lowest on ties; its squared distance; the
    second smallest squared distance, inf with one centre)."""
    for j in range(c0.shape[0]):
        d0 = p0 - c0[j]
        d1 = p1 - c1[j]
        d2 = p2 - c2[j]
        dist[j] = d0 * d0 + d1 * d1 + d2 * d2
    best_d = smallest(dist)
    best = 0
    while dist[best] != best_d:
        best += 1
    second_d = np.inf
    for j in range(c0.shape[0]):
        if j != best:
            second_d = min(second_d, dist[j])
    return best, best_d, second_d
