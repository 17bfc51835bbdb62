"""Shrink-on-load: how much smaller an image may be decoded, given the pipeline it feeds.

Why: a 6000x4000 JPEG headed for a 512-pixel thumbnail does not need its 24 million
pixels. libjpeg decodes at 1/2, 1/4 or 1/8 scale in the DCT domain (Pillow's
`Image.draft`), several times faster than a full decode, and other formats can be
box-reduced (`Image.reduce`) before they become a big array. This module only does the
arithmetic: `plan_shrink` reads the steps, `ShrinkPlan.factor_from` picks a factor among
what the decoder offers, and `ShrinkPlan.apply` rewrites the steps for the smaller image
so the output has exactly the full-decode path's size and closely its pixels (the bound
is in docs/filters.md and tests/filters/test_shrink.py).

Which first steps allow it (anything else, or no geometric step, means a full decode):
- resize that shrinks both axes with `auto`, `area` or `lanczos`: these low-pass the
  image anyway. The factor divides both sides, so the reduced image covers exactly the
  same area (a partial last pixel would stretch the resize). The reduced image keeps at
  least REDUCING_GAP (1.25) times the target size on both axes, so the final filter still
  averages over more than one reduced pixel (thumbor's `draft` and libvips' shrink-on-load
  go down to 1.0; Pillow's `thumbnail` keeps 2.0). `nearest` and `bilinear` are point samplers: a reduced decode
  would change which pixels they pick, so they always get the full image.
- pixelate with block_size b > 1: a factor k dividing b turns blocks of b into blocks of
  b/k of k-reduced pixels (the same means); with upscale the output is scaled back by b
  to the full upright size, so it matches the full path pixel for pixel in size.
- images under MIN_SHRINK_PIXELS (1 MP) are always decoded whole: nothing to win.
- before either, point filters that commute with averaging: grayscale (linear), and
  brightness/contrast with factor <= 1 (no clipping: averaging first and scaling first
  agree up to rounding). A factor above 1 clips, and clipping does not commute.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable

from filters.geometry import resize_target
from filters.registry import Step

# thumbor and libvips use 1.0, Pillow's `thumbnail` 2.0. 1.25 lets a 6000-pixel photo to
# 512 decode at 1/8 (750 >= 1.25 x 512: 12 ms less CPU than at 1/4, 47 dB from the full
# path) and a 2040-pixel one at 1/2 (49 dB); measured in tests/filters/test_shrink.py.
REDUCING_GAP = 1.25
# Below this many source pixels a decode costs a few milliseconds: nothing to win, and on
# small detailed pictures the box grid's misalignment with the output pixels is at its
# most visible (hopper.png to 13x13: 29 dB). Such images are always decoded whole.
MIN_SHRINK_PIXELS = 1_000_000
SHRINKING_INTERPOLATIONS = ("auto", "area", "lanczos")


@dataclass(frozen=True)
class Upscale:
    """Nearest upscale after step `index`: blocks of `block` pixels, cropped to height x width."""

    index: int
    block: int
    height: int
    width: int


@dataclass(frozen=True)
class Applied:
    """The steps to run on an image decoded `factor` times smaller, and any upscale back."""

    steps: list[Step]
    factor: int
    upscale: Upscale | None = None


@dataclass(frozen=True)
class ShrinkPlan:
    """What the first geometric step (at `index`) tolerates: a factor up to `max_factor`
    that divides every number in `divides` (pixelate's block size; resize's source sides)."""

    index: int
    max_factor: int
    divides: tuple[int, ...] = ()

    def allows(self, factor: int) -> bool:
        return 1 <= factor <= self.max_factor and all(n % factor == 0 for n in self.divides)

    def factor_from(self, candidates: Iterable[int]) -> int:
        """The largest allowed factor among what the decoder offers (1 when none is)."""
        return max((k for k in candidates if k > 1 and self.allows(k)), default=1)

    def apply(self, steps: list[Step], factor: int, height: int, width: int) -> Applied:
        """The steps rewritten for an image decoded `factor` times smaller than height x width
        (upright, full size). Factor 1 returns the steps unchanged."""
        if factor == 1:
            return Applied(list(steps), 1)
        if not self.allows(factor):
            raise ValueError(f"shrink factor {factor} is not allowed by {self}")
        step = steps[self.index]
        upscale = None
        if step.name == "resize":
            th, tw = resize_target(height, width, step.params.get("width"), step.params.get("height"),
                                   step.params.get("scale"))
            params = {**step.params, "width": tw, "height": th, "scale": None}
        else:  # pixelate
            block = int(step.params["block_size"])
            params = {**step.params, "block_size": block // factor, "upscale": False}
            if step.params.get("upscale", True):
                upscale = Upscale(self.index, block, height, width)
        rewritten = list(steps)
        rewritten[self.index] = replace(step, params=params)
        return Applied(rewritten, factor, upscale)


def commutes_with_averaging(step: Step) -> bool:
    """True for point filters that give (up to rounding) the same result before or after
    a box average: grayscale, and brightness/contrast that never clip (factor <= 1)."""
    if step.name == "grayscale":
        return True
    if step.name in ("brightness", "contrast"):
        return float(step.params.get("factor", 1.0)) <= 1.0
    return False


def plan_shrink(steps: Iterable[Step], height: int, width: int) -> ShrinkPlan | None:
    """The plan for an upright height x width image, or None when it must be decoded whole."""
    if height * width < MIN_SHRINK_PIXELS:
        return None
    steps = list(steps)
    for index, step in enumerate(steps):
        if step.name == "resize":
            return _resize_plan(index, step, height, width)
        if step.name == "pixelate":
            block = int(step.params.get("block_size", 1))
            return ShrinkPlan(index, block, divides=(block,)) if block > 1 else None
        if not commutes_with_averaging(step):
            return None
    return None


def _resize_plan(index: int, step: Step, height: int, width: int) -> ShrinkPlan | None:
    params = step.params
    if params.get("interpolation", "auto") not in SHRINKING_INTERPOLATIONS:
        return None
    try:
        th, tw = resize_target(height, width, params.get("width"), params.get("height"), params.get("scale"))
    except Exception:
        return None  # the resize itself will say what is wrong, on the full image
    if th > height or tw > width:
        return None
    factor = 1
    while (-(-width // (factor + 1)) >= REDUCING_GAP * tw
           and -(-height // (factor + 1)) >= REDUCING_GAP * th):
        factor += 1
    # Only factors that divide both sides: a partial last pixel (1356 / 8 = 169.5) would
    # stretch the whole resize by up to a reduced pixel (measured: 40 dB instead of 50).
    return ShrinkPlan(index, factor, divides=(height, width)) if factor > 1 else None
