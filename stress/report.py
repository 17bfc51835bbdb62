"""Turn per-task records into the report every load script prints (and writes as JSON).

One implementation for all five scripts and `simple_monitoring stress`, so their figures
mean the same thing everywhere.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

TERMINAL = ("finished", "failed", "canceled")


@dataclass
class TaskRecord:
    """What happened to one submission, from the client's point of view."""

    index: int
    label: str = ""                   # the pipeline, e.g. "blur+sharpen"
    scheduled_at: float = 0.0         # epoch s the send was due (open loop) or made
    sent_at: float = 0.0              # epoch s the request actually left
    submit_ms: float | None = None    # response time, measured from scheduled_at
    status_code: int | None = None    # 0 = no HTTP answer
    task_id: str | None = None
    reject_code: str | None = None
    reject_message: str | None = None
    final_status: str | None = None   # finished|failed|canceled|unfinished
    failure_type: str | None = None
    failure_reason: str | None = None
    queue: str | None = None
    worker: str | None = None
    e2e_ms: float | None = None       # scheduled send → task ended
    done_at: float | None = None      # epoch s the task ended
    extra: dict = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.task_id is not None


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Linear-interpolated percentile (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * pct / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    frac = rank - low
    return float(ordered[low] + (ordered[high] - ordered[low]) * frac)


def latency_summary(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """count, p50, p95, p99, max, mean in ms (rounded to 0.1 ms)."""
    data = [float(v) for v in values if v is not None]

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 1)

    return {
        "count": len(data),
        "p50": r(percentile(data, 50)),
        "p95": r(percentile(data, 95)),
        "p99": r(percentile(data, 99)),
        "max": r(max(data) if data else None),
        "mean": r(sum(data) / len(data) if data else None),
    }


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="milliseconds")


def build_report(script: str, url: str, records: Sequence[TaskRecord], *, started_at: float,
                 finished_at: float, params: dict[str, Any] | None = None,
                 notes: Sequence[str] = ()) -> dict[str, Any]:
    """The full report: counts, latency percentiles, throughput, and every task."""
    accepted = [r for r in records if r.accepted]
    rejected = [r for r in records if not r.accepted]
    by_status = Counter(str(r.status_code) for r in rejected)
    by_code = Counter(r.reject_code or "unknown" for r in rejected)
    finished = [r for r in accepted if r.final_status == "finished"]
    failed = [r for r in accepted if r.final_status == "failed"]
    canceled = [r for r in accepted if r.final_status == "canceled"]
    unfinished = [r for r in accepted if r.final_status not in TERMINAL]
    ended = [r.done_at for r in accepted if r.done_at is not None and r.final_status in TERMINAL]
    sends = [r.sent_at for r in records if r.sent_at]
    first_send = min(sends) if sends else started_at
    last_end = max(ended) if ended else finished_at
    span = max(last_end - first_send, 1e-6)
    send_span = max((max(sends) - first_send) if sends else 0.0, 1e-6)
    return {
        "script": script,
        "url": url,
        "params": dict(params or {}),
        "started_at": iso(started_at),
        "finished_at": iso(finished_at),
        "duration_s": round(finished_at - started_at, 3),
        "submitted": len(records),
        "accepted": len(accepted),
        "rejected": {"total": len(rejected), "by_status": dict(by_status),
                     "by_code": dict(by_code)},
        "rejection_messages": dict(Counter(r.reject_message or "?" for r in rejected).most_common(5)),
        "completed": len(finished),
        "failed": {"total": len(failed),
                   "by_type": dict(Counter(r.failure_type or "unknown" for r in failed))},
        "canceled": len(canceled),
        "unfinished": len(unfinished),
        "unfinished_by_reason": dict(Counter(_still(r) for r in unfinished)),
        "submit_latency_ms": latency_summary(r.submit_ms for r in records if r.status_code),
        "e2e_latency_ms": latency_summary(r.e2e_ms for r in finished),
        "throughput": {
            "completed_per_s": round(len(finished) / span, 2) if finished else 0.0,
            "submitted_per_s": round(len(records) / send_span, 2) if len(records) > 1 else None,
            "window_s": round(span, 3),
        },
        "by_queue": dict(Counter(r.queue or "?" for r in accepted)),
        "by_worker": dict(Counter(r.worker or "?" for r in finished)),
        "notes": list(notes) + (["interrupted (Ctrl-C) while waiting for the tasks"]
                                if any(r.extra.get("interrupted") for r in records) else []),
        "tasks": [asdict(r) for r in records],
    }


def _still(record: TaskRecord) -> str:
    """Why a task was not done: the API's waiting reason, else its last status."""
    reason = record.extra.get("waiting_reason")
    return str(reason) if reason else f"still {record.extra.get('last_status') or 'unknown'}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _latency_line(name: str, summary: dict) -> str:
    return (f"{name:<20} p50 {_ms(summary['p50'])}  p95 {_ms(summary['p95'])}  "
            f"p99 {_ms(summary['p99'])}  max {_ms(summary['max'])} ms  (n={summary['count']})")


def _counts(mapping: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(mapping.items())) or "none"


def format_report(report: dict[str, Any]) -> str:
    """The human-readable summary printed at the end of every run."""
    rej, fail = report["rejected"], report["failed"]
    tp = report["throughput"]
    lines = [
        f"== {report['script']} against {report['url']} ({report['duration_s']:.1f} s) ==",
        f"submitted   {report['submitted']}",
        f"accepted    {report['accepted']}",
        f"rejected    {rej['total']}" + (f"  (by status {_counts(rej['by_status'])}; "
                                          f"by code {_counts(rej['by_code'])})" if rej["total"] else ""),
    ]
    lines += [f"            {n} × {msg}" for msg, n in report.get("rejection_messages", {}).items()]
    lines += [
        f"completed   {report['completed']}",
        f"failed      {fail['total']}" + (f"  (by type {_counts(fail['by_type'])})"
                                         if fail["total"] else ""),
    ]
    if report["canceled"]:
        lines.append(f"canceled    {report['canceled']}")
    if report["unfinished"]:
        lines.append(f"unfinished  {report['unfinished']}  (not done when the wait ran out)")
        lines += [f"            {n} × {why}" for why, n in report["unfinished_by_reason"].items()]
    lines += [
        _latency_line("submit latency", report["submit_latency_ms"]),
        _latency_line("end-to-end latency", report["e2e_latency_ms"]),
        f"throughput          {tp['completed_per_s']:.2f} tasks/s completed over "
        f"{tp['window_s']:.1f} s" + (f"; sent {tp['submitted_per_s']:.2f}/s"
                                    if tp.get("submitted_per_s") else ""),
    ]
    if report.get("by_queue"):
        lines.append(f"queues      {_counts(report['by_queue'])}")
    if report.get("by_worker"):
        lines.append(f"workers     {_counts(report['by_worker'])}")
    lines += [f"note: {n}" for n in report.get("notes", [])]
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: str | Path) -> Path:
    """Write the full report (every task included) as indented JSON."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return target
