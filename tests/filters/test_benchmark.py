"""filters.benchmark runs end to end on a tiny image (speed itself is measured by running
the benchmark, not here) and refuses the GPU backend clearly where there is no GPU."""
from __future__ import annotations

import numpy as np

from filters import benchmark


def test_every_case_runs_and_reports_a_ratio():
    report = benchmark.run("cpu", size=(48, 32), repeat=1, startup=False)
    labels = [row["case"] for row in report["rows"]]
    assert labels == [case.label for case in benchmark.CASES]
    filters_covered = {row["filter"] for row in report["rows"]}
    assert filters_covered == {"resize", "blur", "brightness", "contrast", "grayscale",
                               "sharpen", "edges", "pixelate"}
    for row in report["rows"]:
        assert row["numba_ms"] > 0
        assert (row["ratio"] is None) == (row["opencv_ms"] is None)
    table = benchmark.format_table(report)
    assert "ratio" in table and "blur r=2" in table


def test_reference_outputs_have_the_kernel_shapes():
    img = benchmark.make_image(64, 40)
    assert np.array_equal(img, benchmark.make_image(64, 40))  # deterministic
    for case in benchmark.CASES:
        out = benchmark.cpu_runner(case)(img)
        if case.reference is not None:
            assert case.reference(img).shape == out.shape, case.label


def test_gpu_backend_refuses_clearly_without_a_gpu(capsys):
    # The test process runs numba.cuda in the simulator, which is never benchmarked.
    assert benchmark.main(["--backend", "gpu", "--size", "16x16", "--no-startup"]) == 2
    err = capsys.readouterr().err
    assert "filters.benchmark: --backend gpu is not available here" in err
