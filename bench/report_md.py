"""The bench-e2e JSON report as the Markdown table README.md and docs/benchmarks.md show.

Usage: python -m bench.report_md var/bench/report.json
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


NAMES = {"pixelfleet": "Pixelfleet (`?wait`, one call)", "pixelfleet_poll_10ms": "Pixelfleet (polling every 10 ms)",
         "thumbor": "thumbor 7.8"}


def table(report: dict) -> str:
    lines = ["| input | system | images/s | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|---|"]
    for entry in report["results"].values():
        for system, label in NAMES.items():
            row = entry.get(system)
            if row:
                lines.append(f"| {entry['input']} | {label} | {row['images_per_s']} | {row['p50_ms']} | "
                             f"{row['p95_ms']} | {row['p99_ms']} |")
    lines.append("")
    for name, entry in report["results"].items():
        lines.append(f"- {entry['input'].split(' ')[0]}: Pixelfleet/thumbor **{entry['ratio_pixelfleet_thumbor']}**, "
                     f"polling/wait {entry['ratio_poll_wait']}")
    return "\n".join(lines)


def cpu_table(report: dict) -> str:
    """CPU ms per image by kind of process (bench/cpu.py), one row per input and system."""
    kinds = ("api", "worker", "redis", "supervisor", "thumbor")
    lines = ["| input | system | server CPU ms/image | API | workers | Redis | supervisor | thumbor | client |",
             "|---|---|---|---|---|---|---|---|---|"]
    for entry in report["results"].values():
        for system, label in NAMES.items():
            costs = (entry.get(system) or {}).get("cpu_ms_per_image")
            if costs:
                cells = " | ".join(str(costs.get(kind, "-")) for kind in kinds)
                lines.append(f"| {entry['input'].split(' ')[0]} | {label} | **{costs['server']}** | {cells} | "
                             f"{costs.get('client', '-')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    report = json.loads(Path(sys.argv[1]).read_text())
    print(table(report))
    if any("cpu_ms_per_image" in (entry.get("pixelfleet") or {}) for entry in report["results"].values()):
        print()
        print(cpu_table(report))
