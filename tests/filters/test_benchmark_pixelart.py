"""`make bench-pixelart` in its smoke mode (seconds): the real benchmark code on two small
images, with libimagequant when its venv exists (make bench-pixelart builds it) and
without it, saying so, when it does not."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from filters import benchmark_pixelart as bench


def test_smoke_mode_scores_every_case():
    report = bench.run(smoke=True, repeat=1)
    assert len(report["images"]) >= 1
    assert len(report["rows"]) == len(report["images"]) * len(bench.COLOURS) * len(bench.DITHERING)
    peer = bench.PEER_PYTHON.exists()
    for row in report["rows"]:
        pf = row["pixelfleet"]
        assert 0 < pf["mean_de2000"] < 30 and pf["ms"] > 0
        assert 0 < pf["lowpass_de2000"] < pf["mean_de2000"]   # blurring hides error
        assert pf["colours_used"] <= row["colours"]
        assert 0 <= pf["salient_kept"] <= pf["salient_total"]
        assert ("libimagequant" in row) == peer
        if peer:
            assert 0 < row["libimagequant"]["mean_de2000"] < 30
            assert row["libimagequant"]["colours_used"] <= row["colours"]
    summary = {(e["colours"], e["dither"]): e for e in report["summary"]}
    assert set(summary) == {(k, d) for k in bench.COLOURS for d in bench.DITHERING}
    # More colours, less error; dithering trades error per pixel for less from a distance.
    assert summary[(16, "none")]["pixelfleet"]["mean_de2000"] < \
        summary[(8, "none")]["pixelfleet"]["mean_de2000"]
    for k in bench.COLOURS:
        assert summary[(k, "dithered")]["pixelfleet"]["lowpass_de2000"] < \
            summary[(k, "none")]["pixelfleet"]["lowpass_de2000"]
    table = bench.format_table(report)
    assert "| 8 | none |" in table and ("absent" in table) != peer


def test_missing_peer_venv_is_reported_not_fatal(tmp_path: Path):
    report = bench.run(smoke=True, repeat=1, peer_python=tmp_path / "no-venv" / "python")
    assert "no libimagequant venv" in report["peer"]
    assert all("libimagequant" not in row for row in report["rows"])
    assert "absent" in bench.format_table(report)


def test_salient_reference_colours_find_small_vivid_patches_once():
    img = np.zeros((100, 100, 3), np.uint8) + (120, 125, 118)   # greyish background
    img[10:20, 10:20] = (220, 30, 40)                           # 100 px of red
    img[50:52, 50:55] = (30, 60, 220)                           # 10 px of blue: too few
    img[70:80, 70:80] = (225, 35, 45)                           # more of nearly the same red
    refs = bench.salient_reference_colours(img)
    assert len(refs) == 1                                       # one red, counted once
    assert refs[0][1] > 40                                      # a* of a red


def test_photo_like_images_are_deterministic():
    a = bench.photo_like(64, 48, 3)
    assert a.shape == (48, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, bench.photo_like(64, 48, 3))
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 500      # photo-like: many colours
