"""libimagequant's side of `make bench-pixelart`, run with the peer venv's Python.

Reads one JSON job from stdin: {"repeat": N, "items": [{"rgba": path, "width": w,
"height": h, "colours": k, "dithering": 0.0|1.0, "out": path}]}. For each item it quantises
the raw RGBA bytes with imagequant (libimagequant) N times, writes the last result's
palette indices (one byte a pixel) to `out`, and prints one JSON line with each item's
palette (flat RGBA) and the best and median wall time of the quantisation call alone (no
process start, no file I/O).
Standard library + imagequant only: the project's packages are not installed here.
"""
from __future__ import annotations

import json
import statistics
import sys
import time

import imagequant


def main() -> int:
    job = json.load(sys.stdin)
    results = []
    for item in job["items"]:
        with open(item["rgba"], "rb") as f:
            data = f.read()
        times = []
        for _ in range(max(1, int(job.get("repeat", 1)))):
            start = time.perf_counter()
            indices, palette = imagequant.quantize_raw_rgba_bytes(
                data, item["width"], item["height"], dithering_level=item["dithering"],
                max_colors=item["colours"])
            times.append((time.perf_counter() - start) * 1000.0)
        with open(item["out"], "wb") as f:
            f.write(bytes(indices))
        results.append({"best_ms": min(times), "median_ms": statistics.median(times),
                        "palette": list(palette)})
    print(json.dumps({"version": getattr(imagequant, "__version__", "?"), "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
