"""Throughput and latency over time from a stress report, as a PNG (matplotlib, Agg)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display
import matplotlib.pyplot as plt  # noqa: E402


def plot_report(report: dict[str, Any], path: str | Path, bucket_s: float = 1.0) -> Path:
    """Two panels: tasks completed per second, and per-task latency against send time."""
    tasks = report["tasks"]
    sends = [t["sent_at"] for t in tasks if t.get("sent_at")]
    t0 = min(sends) if sends else 0.0
    done = sorted(t["done_at"] - t0 for t in tasks
                  if t.get("done_at") and t.get("final_status") == "finished")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    if done:
        buckets = int(done[-1] // bucket_s) + 1
        counts = [0] * buckets
        for d in done:
            counts[int(d // bucket_s)] += 1
        top.step([i * bucket_s for i in range(buckets)], [c / bucket_s for c in counts],
                 where="post", label="completed/s")
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
