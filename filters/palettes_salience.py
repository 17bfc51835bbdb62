"""Salient colours for the adaptive palette: sample salience and reserved entries.

A palette fitted to pixel counts spends its entries on large areas: an 8-colour flower
photo loses its small red buds, a few hundred vivid pixels among 170 000. On the fit's
samples (at most 32768, so cheap):

1. Salience (`salience`): chroma x surround contrast, each 0..1. OKLab chroma ramps
   from CHROMA_LOW to CHROMA_HIGH (grey, skin and foliage score low, a red bud high);
   the OKLab distance from the pixel to the mean colour of its (2r+1)^2 neighbourhood
   ramps up to SURROUND_HIGH (a small spot differs from its surround; the inside of a
   large area, however vivid, does not). palettes_fit's median-cut seed counts salient
   samples more; `sample_weights` (1 + SALIENCE_GAIN x salience) ranks outlier groups.
2. Reserved entries (`reserve_salient`). When k-means has settled, the salient samples
   still farther than RESERVE_DISTANCE from every centre are grouped (the group a new
   centre would serve best); a SMALL group (at most RESERVE_MAX_SHARE of the samples -
   larger regions compete by their counts anyway) with at least RESERVE_MIN_MASS of the
   weight gets the entry whose removal costs least, pinned at the group's mean while the
   other centres re-settle. The swap is kept when the plain error (sum of distances)
   stays within RESERVE_MAX_COST of the unreserved fit's. Mean error measured against
   libimagequant stays >= 5 % lower with it (docs/benchmarks.md).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from filters.colour import LINEAR_LUT, NJIT_CONVERT, image_to_oklab, oklab_from_srgb8_cpu
from filters.cpu_common import NJIT_SERIAL
from filters.cpu_search import nearest_two

SALIENCE_GAIN = 20.0
CHROMA_LOW, CHROMA_HIGH = 0.05, 0.15     # OKLab chroma
SURROUND_RADIUS = 2                      # 5 x 5 neighbourhood (of the small image)
SURROUND_HIGH = 0.10                     # OKLab distance to the neighbourhood mean
RESERVE_DISTANCE = 0.08                  # OKLab; about CIEDE2000 8
RESERVE_RADIUS = 0.10                    # outliers this close to the worst one form its group
RESERVE_SALIENCE = 0.2                   # only salient samples may reserve an entry
RESERVE_MIN_MASS = 0.002                 # share of the total weight a group needs
RESERVE_TRIES = 3
RESERVE_MAX_SHARE = 0.005                # ... for SMALL regions: at most 0.5 % of the samples
RESERVE_SHARE = 16                      # one reserved entry per 16 colours at most (and 1)
RESERVE_CANDIDATES = 512                # worst-served salient samples searched for a group
RESERVE_MAX_COST = 0.06                 # plain error may grow by 6 % for reserved entries
RESERVE_ITERATIONS = 12


@njit(**NJIT_CONVERT)
def _salience(small, index, lab, lut, radius, chroma_low, chroma_high, surround_high, out):
    h, w = small.shape[0], small.shape[1]
    for i in range(index.shape[0]):
        y = index[i] // w
        x = index[i] % w
        ok_l, ok_a, ok_b = lab[i, 0], lab[i, 1], lab[i, 2]
        chroma = np.sqrt(ok_a * ok_a + ok_b * ok_b)
        c = min(max((chroma - chroma_low) / (chroma_high - chroma_low), 0.0), 1.0)
        if c == 0.0:
            out[i] = 0.0
            continue
        y0, y1 = max(y - radius, 0), min(y + radius + 1, h)
        x0, x1 = max(x - radius, 0), min(x + radius + 1, w)
        s0 = 0
        s1 = 0
        s2 = 0
        for yy in range(y0, y1):
            for xx in range(x0, x1):
                s0 += np.int64(small[yy, xx, 0])
                s1 += np.int64(small[yy, xx, 1])
                s2 += np.int64(small[yy, xx, 2])
        n = (y1 - y0) * (x1 - x0)
        m_l, m_a, m_b = oklab_from_srgb8_cpu(lut, (2 * s0 + n) // (2 * n),
                                             (2 * s1 + n) // (2 * n), (2 * s2 + n) // (2 * n))
        d = np.sqrt((ok_l - m_l) ** 2 + (ok_a - m_a) ** 2 + (ok_b - m_b) ** 2)
        out[i] = c * min(d / surround_high, 1.0)


def salience(small: np.ndarray, index: np.ndarray, lab: np.ndarray | None = None
             ) -> np.ndarray:
    """Salience 0..1 of the pixels `index` (flat indices) of the (H, W, 3|4) image;
    `lab`: their OKLab when the caller has it (the kernels' conversion, float32 exact)."""
    small = np.ascontiguousarray(small)
    index = np.ascontiguousarray(index, dtype=np.int64)
    if lab is None:
        lab = image_to_oklab(small[..., :3].reshape(-1, 1, 3)[index]).reshape(-1, 3)
    out = np.empty(len(index), np.float64)
    _salience(small, index, np.ascontiguousarray(lab, dtype=np.float32), LINEAR_LUT,
              SURROUND_RADIUS, CHROMA_LOW, CHROMA_HIGH, SURROUND_HIGH, out)
    return out


def sample_weights(sal: np.ndarray) -> np.ndarray:
    """k-means / median-cut weight of each sample from its salience."""
    return 1.0 + SALIENCE_GAIN * sal


@njit(**NJIT_SERIAL)
def _costs(points, weights, centres, nearest, removal):
    """Squared distance of each point to its nearest centre, and per centre the weighted
    cost of removing it (its points moving to their second-nearest centre), both in
    distances (not squared). Returns the weighted sum of distances."""
    k = centres.shape[0]
    for j in range(k):
        removal[j] = 0.0
    total = 0.0
    c0 = np.ascontiguousarray(centres[:, 0])
    c1 = np.ascontiguousarray(centres[:, 1])
    c2 = np.ascontiguousarray(centres[:, 2])
    dist = np.empty(k, np.float64)
    for i in range(points.shape[0]):
        # Every distance first (vectorised), then the first index of the minimum (lowest
        # index on ties) and the second smallest.
        arg, best, second = nearest_two(points[i, 0], points[i, 1], points[i, 2], c0, c1, c2, dist)
        nearest[i] = best
        total += weights[i] * np.sqrt(best)
        if k > 1:
            removal[arg] += weights[i] * (np.sqrt(second) - np.sqrt(best))
    return total


@njit(**NJIT_SERIAL)
def _best_centre(pts, badness, radius2):
    """Index of the point whose radius-neighbourhood holds the most badness."""
    best, best_score = 0, -1.0
    for i in range(pts.shape[0]):
        score = 0.0
        for j in range(pts.shape[0]):
            d = 0.0
            for c in range(3):
                diff = pts[i, c] - pts[j, c]
                d += diff * diff
            if d <= radius2:
                score += badness[j]
        if score > best_score:
            best, best_score = i, score
    return best


def _worst_group(points: np.ndarray, weights: np.ndarray, eligible: np.ndarray,
                 nearest: np.ndarray, min_mass: float) -> np.ndarray | None:
    """The eligible samples that one new centre would serve best: for each eligible
    sample, the weight x distance of the eligible samples within RESERVE_RADIUS of it;
    the largest such group, or None when it carries less than min_mass of weight. The
    eligible samples are few (far AND salient), so the pairwise search is cheap; at most
    RESERVE_CANDIDATES of them (the worst served) are considered."""
    where = np.nonzero(eligible)[0]
    if len(where) == 0 or weights[where].sum() < min_mass:
        return None
    badness = weights[where] * np.sqrt(nearest[where])
    where = where[np.argsort(-badness, kind="stable")[:RESERVE_CANDIDATES]]
    badness = weights[where] * np.sqrt(nearest[where])
    pts = np.ascontiguousarray(points[where])
    best = _best_centre(pts, badness, RESERVE_RADIUS ** 2)
    members = where[((pts - pts[best]) ** 2).sum(axis=1) <= RESERVE_RADIUS ** 2]
    if weights[members].sum() < min_mass:
        return None
    group = np.zeros(len(points), np.bool_)
    group[members] = True
    return group


def reserve_salient(points: np.ndarray, weights: np.ndarray, sal: np.ndarray,
                    centres: np.ndarray, refine) -> np.ndarray:
    """Reserve palette entries for outlying salient colours (see the module docstring):
    up to max(1, k // RESERVE_SHARE) swaps, each kept when the plain error (sum of
    distances) stays within RESERVE_MAX_COST of what it was before any reservation.
    `refine(centres, iterations, pinned)` runs Lloyd iterations in place, leaving the
    pinned (reserved) centres where they are."""
    n, k = len(points), len(centres)
    if k < 2 or n == 0:
        return centres
    ones = np.ones(n)
    nearest = np.empty(n, np.float64)
    removal = np.empty(k, np.float64)
    budget = _costs(points, ones, centres, nearest, removal) * (1.0 + RESERVE_MAX_COST)
    min_mass = RESERVE_MIN_MASS * weights.sum()
    tried = np.zeros(n, np.bool_)
    reserved = 0
    pinned = np.zeros(k, np.bool_)
    for _ in range(RESERVE_TRIES):
        if reserved >= max(1, k // RESERVE_SHARE):
            break
        far = (nearest > RESERVE_DISTANCE ** 2) & (sal >= RESERVE_SALIENCE) & ~tried
        group = _worst_group(points, weights, far, nearest, min_mass)
        if group is None:
            break
        tried |= group
        if group.sum() > RESERVE_MAX_SHARE * n:
            continue  # not small: a region this large competes for entries by its count
        candidate = (points[group] * weights[group, None]).sum(axis=0) / weights[group].sum()
        trial = centres.copy()
        slot = int(np.argmin(np.where(pinned, np.inf, removal)))
        trial[slot] = candidate
        trial_pinned = pinned.copy()
        trial_pinned[slot] = True
        refine(trial, RESERVE_ITERATIONS, trial_pinned)
        trial_nearest = np.empty(n, np.float64)
        trial_removal = np.empty(k, np.float64)
        if _costs(points, ones, trial, trial_nearest, trial_removal) <= budget:
            centres, nearest, removal, pinned = trial, trial_nearest, trial_removal, trial_pinned
            reserved += 1
    return centres
