"""The bench-e2e JSON report as the Markdown table README.md and docs/benchmarks.md show.

Usage: python -m bench.report_md var/bench/report.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def table(report: dict) -> str:
    lines = ["| input | system | images/s | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|---|"]
    names = {"pixelfleet": "Pixelfleet (`?wait`, one call)", "pixelfleet_poll_10ms": "Pixelfleet (polling every 10 ms)",
             "thumbor": "thumbor 7.8"}
    for entry in report["results"].values():
        for system, label in names.items():
            row = entry.get(system)
            if row:
                lines.append(f"| {entry['input']} | {label} | {row['images_per_s']} | {row['p50_ms']} | "
                             f"{row['p95_ms']} | {row['p99_ms']} |")
    lines.append("")
    for name, entry in report["results"].items():
        lines.append(f"- {entry['input'].split(' ')[0]}: Pixelfleet/thumbor **{entry['ratio_pixelfleet_thumbor']}**, "
                     f"polling/wait {entry['ratio_poll_wait']}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(json.loads(Path(sys.argv[1]).read_text())))
