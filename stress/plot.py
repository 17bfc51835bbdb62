"""Throughput and latency over time from a stress report, as a PNG (matplotlib, Agg)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display
import matplotlib.pyplot as plt  # noqa: E402


def plot_report(report: dict[str, Any], path: str | Path, buckets: int = 30) -> Path:
    """Two panels: tasks completed per second (bars), and per-task latency against send time."""
    tasks = report["tasks"]
    sends = [t["sent_at"] for t in tasks if t.get("sent_at")]
    t0 = min(sends) if sends else 0.0
    done = sorted(t["done_at"] - t0 for t in tasks
                  if t.get("done_at") and t.get("final_status") == "finished")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    if done:
        # 1 s bars (up to 10 s for long runs); a run shorter than 10 s gets 10 bars
        span = max(done[-1], 1e-3)
        width = span / 10 if span < 10 else min(10.0, max(1.0, span / buckets))
        counts = [0] * (int(done[-1] // width) + 1)
        for d in done:
            counts[int(d // width)] += 1
        top.bar([i * width for i in range(len(counts))], [c / width for c in counts],
                width=width, align="edge", label="completed/s")
    top.set_ylabel("tasks / s")
    top.set_title(f"{report['script']} — {report['completed']} completed, "
                  f"{report['throughput']['completed_per_s']:.2f}/s")
    top.grid(alpha=0.3)
    for key, label, marker in (("submit_ms", "submit", "x"), ("e2e_ms", "end-to-end", ".")):
        pts = [(t["scheduled_at"] - t0, t[key]) for t in tasks if t.get(key) is not None]
        if pts:
            bottom.scatter([p[0] for p in pts], [p[1] for p in pts], s=10, marker=marker,
                           label=label)
    bottom.set_xlabel("seconds since first send")
    bottom.set_ylabel("latency (ms)")
    bottom.grid(alpha=0.3)
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend()
    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)
    plt.close(fig)
    return target
