"""Fleet metrics and scaling advice as pure functions over data already read from Redis.

Nothing here touches Redis, Django or the clock on its own: `collect_fleet_data` in
views_metrics.py gathers a `FleetData`, and `build_metrics` turns it into the JSON of
GET /api/metrics/ (api.prometheus renders the same reading for /metrics; the dashboard
reads the JSON over HTTP). Keeping the advice pure is what lets the tests feed it
crafted fleets (every action, every urgency). Advice only: nothing here starts or stops
a worker.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

from workers.routing import capabilities_of_queue
from workers.settings import CAPABILITIES
from workers.stats import percentile as stats_percentile

SCALE_UP = "SCALE_UP"
SCALE_DOWN = "SCALE_DOWN"
MAINTAIN = "MAINTAIN"
URGENCIES = ("low", "medium", "high", "critical")

# Tuning of the advice (documented in docs/api_ops.md).
TARGET_BACKLOG_PER_WORKER = 4      # queued tasks one worker may carry before we add one
HIGH_BACKLOG_PER_WORKER = 10       # beyond this per worker the backlog is "high" urgency
SCALE_DOWN_UTILIZATION = 0.25      # below this, with an empty queue, workers sit idle
MIN_WORKERS = 1                    # never advise going below this many workers
MAX_STEP = 8                       # never advise adding more than this many at once
THROUGHPUT_WINDOWS = {"1m": 60, "5m": 300}
LATENCY_WINDOW_S = 300
PERCENTILES = (50, 95, 99)
AVAILABLE_STATES = ("idle", "warming")   # workers that will take the next task


@dataclass
class FleetData:
    """Everything the metrics need, read once: heartbeats, queue depths, counters."""

    now: float                                   # unix time of the reading
    workers: list[dict]                          # workers.registry.read_workers()
    queue_depths: dict[str, int]                 # queue name -> queued jobs
    counters: dict = field(default_factory=dict)           # workers.stats.counters()
    completions: list[dict] = field(default_factory=list)  # recent_completions(300 s)
    host: dict = field(default_factory=dict)     # cpu_usage, memory_usage, memory_available_gb
    # Exact number of completions ended within each THROUGHPUT_WINDOWS span (seconds ->
    # count), when `completions` is only the most recent part of the window (a busy
    # fleet ends more tasks than are worth decoding per request). None: it is all of it.
    window_counts: dict[int, int] | None = None
    # Cumulative latency histograms since the Redis data was created
    # (workers.stats.read_histograms); None when not read.
    histograms: dict[str, dict] | None = None
    storage: dict = field(default_factory=dict)  # workers.storage_budget.measure().as_dict()


# --- Small helpers ------------------------------------------------------------------------
def caps_label(caps: Iterable[str]) -> str:
    """A stable, human label for a capability set: {"io", "cpu"} -> "cpu+io"."""
    return "+".join(sorted(caps)) or "none"


def worker_capabilities(worker: dict) -> frozenset[str]:
    """A heartbeat's capabilities as a set; "all" means every class there is."""
    raw = worker.get("capabilities") or ()
    if isinstance(raw, str):
        raw = raw.replace("+", ",").split(",")
    caps = {str(c).strip() for c in raw if str(c).strip()}
    return frozenset(CAPABILITIES) if "all" in caps else frozenset(caps)


def percentile(values: list[float], pct: float) -> float | None:
    """workers.stats' percentile (linear interpolation), rounded: the dashboard's numbers."""
    value = stats_percentile(values, pct)
    return None if value is None else round(value, 3)


def _number(value, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def failed_by_type(counters: dict) -> dict[str, int]:
    """Failures per failure type: the `failed_<type>` fields of workers.stats.counters()."""
    prefix = "failed_"
    return {key[len(prefix):]: int(_number(value)) for key, value in counters.items()
            if isinstance(key, str) and key.startswith(prefix)}


# --- Sections of the response --------------------------------------------------------------
def throughput(completions: list[dict], now: float,
               window_counts: dict[int, int] | None = None) -> dict:
    """Tasks ended per window (completed and failed), per minute and per second.

    With `window_counts` (exact totals) larger than the records at hand, the total is
    exact and the completed/failed split is the records' proportion (`"sampled": true`).
    """
    out = {}
    for label, seconds in THROUGHPUT_WINDOWS.items():
        recent = [c for c in completions if now - _number(c.get("ended_at")) <= seconds]
        done = sum(1 for c in recent if c.get("status") == "finished")
        total = len(recent)
        exact = (window_counts or {}).get(seconds)
        sampled = exact is not None and exact > total
        if sampled:
            done, total = (round(done / total * exact) if total else exact), exact
        out[label] = {
            "window_s": seconds, "completed": done, "failed": total - done,
            "per_minute": round(total * 60 / seconds, 2),
            "per_second": round(total / seconds, 3),
        }
        if sampled:
            out[label]["sampled"] = True
    return out


def latency(completions: list[dict], now: float, window_s: int = LATENCY_WINDOW_S) -> dict:
    """p50/p95/p99 (ms) of queue wait and processing over the recent window."""
    recent = [c for c in completions if now - _number(c.get("ended_at")) <= window_s]
    out: dict = {"window_s": window_s, "samples": len(recent)}
    for key, name in (("wait_ms", "queue_wait_ms"), ("processing_ms", "processing_ms")):
        values = [_number(c[key]) for c in recent if c.get(key) is not None]
        out[name] = {f"p{p}": percentile(values, p) for p in PERCENTILES}
        out[name]["mean"] = round(sum(values) / len(values), 2) if values else None
    return out


def workers_by_capability(workers: list[dict]) -> dict[str, dict]:
    """Per capability class: how many live workers have it, and in which state."""
    out = {cap: {"total": 0, "idle": 0, "busy": 0, "warming": 0, "paused": 0, "stopping": 0}
           for cap in CAPABILITIES}
    for worker in workers:
        state = str(worker.get("state") or "idle")
        for cap in worker_capabilities(worker):
            entry = out.setdefault(cap, {"total": 0, "idle": 0, "busy": 0,
                                         "warming": 0, "paused": 0, "stopping": 0})
            entry["total"] += 1
            entry[state] = entry.get(state, 0) + 1
    return out


def _urgency_for_backlog(per_worker: float) -> str:
    if per_worker >= HIGH_BACKLOG_PER_WORKER:
        return "high"
    if per_worker >= TARGET_BACKLOG_PER_WORKER:
        return "medium"
    return "low"


def _confidence(samples: int, base: float) -> float:
    """More recent completions behind the numbers -> more confidence (capped at 0.95)."""
    return round(min(0.95, base + min(samples, 100) / 100 * 0.3), 2)


def cover_set(workers: list[dict]) -> list[int]:
    """Indices of as few live workers as still cover every capability class the fleet
    serves (greedy set cover; ties go to the earlier worker)."""
    pool = [worker_capabilities(w) for w in workers]
    remaining = frozenset().union(*pool) if pool else frozenset()
    chosen: list[int] = []
    while remaining:
        best = max(range(len(pool)), key=lambda i: (len(pool[i] & remaining), -i))
        remaining -= pool[best]
        chosen.append(best)
    return chosen


def coverage_floor(workers: list[dict]) -> int:
    """How few of the live workers still cover every capability class the fleet serves
    (greedy set cover): scaling down below this would leave a class with no worker."""
    return len(cover_set(workers))


def scale_down_plan(workers: list[dict], keep: int) -> list[dict]:
    """Which workers a SCALE_DOWN to `keep` would stop: never a busy one, never one the
    capability cover needs; idle ones beyond that, the last by name first."""
    must = set(cover_set(workers)) | {i for i, w in enumerate(workers) if w.get("state") == "busy"}
    optional = [i for i in range(len(workers)) if i not in must]
    spare = max(0, keep - len(must))
    return [workers[i] for i in optional[spare:]]


def apply_scale_down(fleet: dict, per_class: list[dict], workers: list[dict]) -> dict:
    """Make the fleet-wide SCALE_DOWN and the per-class advice say the same thing.

    The fleet-wide advice counts workers; the per-class one looks at what waits for each
    class. Without this the dashboard said "SCALE_DOWN 3→1" over three per-class lines of
    MAINTAIN. Now the reason names the workers that could stop, and each class that would
    lose one says SCALE_DOWN with `remove` (per_class is updated in place).
    """
    if fleet["action"] != SCALE_DOWN:
        return fleet
    stopped = scale_down_plan(workers, fleet["recommended"])
    if not stopped:
        return {**fleet, "action": MAINTAIN, "recommended": fleet["current_workers"],
                "reason": fleet["reason"] + "; but every worker is busy or needed to cover a capability class"}
    for entry in per_class:
        caps = frozenset(entry["capabilities"].split("+"))
        lose = sum(1 for w in stopped if caps <= worker_capabilities(w))
        if entry["action"] == MAINTAIN and not entry["queued"] and lose and entry["capable_workers"] > lose:
            entry.update(action=SCALE_DOWN, remove=lose, message=(
                f"nothing waits for {entry['capabilities']}: {entry['capable_workers']} capable worker(s), "
                f"{entry['capable_workers'] - lose} enough ({', '.join(str(w.get('name')) for w in stopped if caps <= worker_capabilities(w))} could stop)"))
    names = ", ".join(str(w.get("name")) for w in stopped)
    return {**fleet, "recommended": fleet["current_workers"] - len(stopped),
            "reason": f"{fleet['reason']}; {names} could stop, the rest still cover every class", "stop": [
                str(w.get("name")) for w in stopped]}


def recommend_scaling(active: int, busy: int, queue_length: int, samples: int,
                      floor: int = MIN_WORKERS) -> dict:
    """The fleet-wide advice: SCALE_UP / SCALE_DOWN / MAINTAIN with reason and urgency.

    Rules (in order): work waiting and no worker at all -> SCALE_UP, critical; every
    worker busy and more than TARGET_BACKLOG_PER_WORKER waiting each -> SCALE_UP
    (urgency by backlog); empty queue and utilization under SCALE_DOWN_UTILIZATION with
    more than `floor` workers (at least MIN_WORKERS; the coverage floor keeps every served
    capability class) -> SCALE_DOWN; otherwise MAINTAIN.
    """
    idle = max(0, active - busy)
    utilization = busy / active if active else 0.0
    advice = {"current_workers": active, "recommended": active, "action": MAINTAIN,
              "reason": "", "confidence": _confidence(samples, 0.6), "urgency": "low"}
    if active == 0 and queue_length > 0:
        advice.update(recommended=max(MIN_WORKERS, min(MAX_STEP, math.ceil(
            queue_length / TARGET_BACKLOG_PER_WORKER))), action=SCALE_UP, urgency="critical",
            confidence=0.95,
            reason=f"{queue_length} task(s) queued and no live worker: nothing is being processed")
        return advice
    if active == 0:
        advice.update(reason="no live worker and no queued task", confidence=0.9)
        return advice
    per_worker = queue_length / active
    if queue_length > 0 and idle == 0 and per_worker > TARGET_BACKLOG_PER_WORKER:
        wanted = math.ceil(queue_length / TARGET_BACKLOG_PER_WORKER)
        add = max(1, min(MAX_STEP, wanted - active))
        advice.update(recommended=active + add, action=SCALE_UP,
                      urgency=_urgency_for_backlog(per_worker),
                      confidence=_confidence(samples, 0.65),
                      reason=(f"all {active} worker(s) busy with {queue_length} task(s) queued "
                              f"({per_worker:.1f} per worker, target {TARGET_BACKLOG_PER_WORKER})"))
        return advice
    floor = max(MIN_WORKERS, floor)
    if queue_length == 0 and utilization < SCALE_DOWN_UTILIZATION and active > floor:
        keep = max(floor, busy + 1)
        advice.update(recommended=keep, action=SCALE_DOWN, urgency="low",
                      confidence=_confidence(samples, 0.5),
                      reason=(f"queue empty and utilization {utilization:.0%} "
                              f"(< {SCALE_DOWN_UTILIZATION:.0%}): {active - keep} worker(s) idle"))
        return advice
    if queue_length > 0 and idle == 0:
        advice.update(urgency="medium" if per_worker >= 1 else "low",
                      reason=(f"all {active} worker(s) busy, {queue_length} queued "
                              f"({per_worker:.1f} per worker, within the target of "
                              f"{TARGET_BACKLOG_PER_WORKER})"))
    else:
        advice["reason"] = (f"{busy} of {active} worker(s) busy, {queue_length} queued: "
                            f"capacity matches the load")
    return advice


def recommend_per_capability(workers: list[dict], queue_depths: dict[str, int]) -> list[dict]:
    """One piece of advice per capability set that has work waiting or is a base class.

    A queued task can be run only by a worker whose capabilities include the queue's
    set, so the fleet-wide numbers can look fine while one class starves; this says so.
    """
    live = [(worker_capabilities(w), str(w.get("state") or "idle")) for w in workers
            if w.get("state") != "stopping"]
    sets: dict[frozenset, int] = {frozenset([c]): 0 for c in CAPABILITIES}
    for queue, depth in queue_depths.items():
        if int(depth) > 0:          # an empty combined queue needs no advice of its own
            caps = capabilities_of_queue(queue)
            sets[caps] = sets.get(caps, 0) + int(depth)
    advice = []
    for caps, waiting in sorted(sets.items(), key=lambda kv: (len(kv[0]), caps_label(kv[0]))):
        label = caps_label(caps)
        capable = [state for wcaps, state in live if caps <= wcaps]
        available = sum(1 for state in capable if state in AVAILABLE_STATES)
        entry = {"capabilities": label, "queued": waiting, "capable_workers": len(capable),
                 "available_workers": available, "action": MAINTAIN, "urgency": "low"}
        if waiting and not capable:
            entry.update(action=SCALE_UP, urgency="critical", add=1, message=(
                f"{waiting} task(s) wait for {label}, no live worker has capabilities "
                f"{label}: start one with --capabilities {label.replace('+', ',')}"))
        elif waiting and not available:
            per_worker = waiting / len(capable)
            add = max(1, min(MAX_STEP, math.ceil(waiting / TARGET_BACKLOG_PER_WORKER) - len(capable)))
            entry.update(action=SCALE_UP, urgency=_urgency_for_backlog(per_worker), add=add,
                         message=(f"{waiting} task(s) wait for {label}, no idle {label}-capable "
                                  f"worker: add {'one' if add == 1 else add}"))
        elif waiting:
            entry["message"] = (f"{waiting} task(s) wait for {label}, {available} idle "
                                f"{label}-capable worker(s) will take them")
        else:
            entry["message"] = f"nothing waits for {label} ({len(capable)} capable worker(s))"
        advice.append(entry)
    return advice


def combine_advice(fleet: dict, per_class: list[dict]) -> dict:
    """The fleet-wide advice, corrected by the per-class one.

    Idle workers of the wrong class make the fleet-wide numbers look fine while a class
    starves ("3 tasks wait for cpu" and only io workers are idle): then the fleet-wide
    action is SCALE_UP too, adding what the starving classes need, with their reasons.
    """
    starving = [a for a in per_class if a["action"] == SCALE_UP]
    if not starving or fleet["action"] == SCALE_UP and fleet["urgency"] == "critical":
        return fleet
    add = sum(a.get("add", 1) for a in starving)
    urgency = max((a["urgency"] for a in starving), key=URGENCIES.index)
    if fleet["action"] == SCALE_UP:
        urgency = max(urgency, fleet["urgency"], key=URGENCIES.index)
    return {**fleet, "action": SCALE_UP, "urgency": urgency,
            "recommended": max(fleet["recommended"], fleet["current_workers"] + add),
            "reason": "; ".join(a["message"] for a in starving)}


def build_metrics(data: FleetData) -> dict:
    """The body of GET /api/metrics/: the original system's fields, then the new ones."""
    workers = data.workers
    active = len(workers)
    busy = sum(1 for w in workers if w.get("state") == "busy")
    queue_length = sum(int(d) for d in data.queue_depths.values())
    completed = int(_number(data.counters.get("completed")))
    failed = int(_number(data.counters.get("failed")))
    finished_total = completed + failed
    window = latency(data.completions, data.now)
    if data.window_counts and data.window_counts.get(LATENCY_WINDOW_S, 0) > window["samples"]:
        window["sampled_from"] = data.window_counts[LATENCY_WINDOW_S]   # the most recent ones
    per_class = recommend_per_capability(workers, data.queue_depths)
    return {
        "timestamp": data.now,
        "cpu_usage": data.host.get("cpu_usage"),
        "memory_usage": data.host.get("memory_usage"),
        "memory_available_gb": data.host.get("memory_available_gb"),
        "active_workers": active,
        "busy_workers": busy,
        "utilization": round(busy / active * 100, 1) if active else 0.0,
        "queue_length": queue_length,
        "success_rate": round(completed / finished_total * 100, 1) if finished_total else 100.0,
        "scaling_recommendation": apply_scale_down(combine_advice(
            recommend_scaling(active, busy, queue_length, window["samples"],
                              coverage_floor(workers)), per_class), per_class, workers),
        "queues": dict(sorted(data.queue_depths.items())),
        "workers_by_capability": workers_by_capability(workers),
        "fleet": {
            "cpu_percent": round(sum(_number(w.get("cpu_percent")) for w in workers), 1),
            "rss_mb": round(sum(_number(w.get("rss_mb")) for w in workers), 1),
            "workers": [{k: w.get(k) for k in ("name", "host", "state", "capabilities",
                                               "backend", "cpu_percent", "rss_mb", "done",
                                               "failed", "current_task")} for w in workers],
        },
        "tasks": {"submitted": int(_number(data.counters.get("submitted"))),
                  "completed": completed, "failed": failed,
                  "failed_by_type": failed_by_type(data.counters)},
        "throughput": throughput(data.completions, data.now, data.window_counts),
        "latency": window,
        "recommendations": per_class,
        "storage": data.storage,
    }


# --- History (the dashboard's charts) ------------------------------------------------------
HISTORY_WINDOW_S = 15 * 60
HISTORY_BUCKET_S = 30


def history(completions: list[dict], now: float, window_s: int = HISTORY_WINDOW_S,
            bucket_s: int = HISTORY_BUCKET_S) -> dict:
    """Throughput and latency per time bucket over the window, oldest bucket first.

    Each bucket counts the tasks that ended in it (finished and failed) and gives p50/p95
    of queue wait and processing with the same percentile as `latency`, so a chart and
    the 5-minute figures never disagree on how a percentile is computed.
    """
    count = max(1, math.ceil(window_s / bucket_s))
    start = now - count * bucket_s
    rows: list[dict] = [{"completed": 0, "failed": 0, "wait": [], "processing": []} for _ in range(count)]
    for record in completions:
        ended = _number(record.get("ended_at"), default=-1.0)
        if not start <= ended <= now:
            continue
        row = rows[min(count - 1, int((ended - start) // bucket_s))]
        row["completed" if record.get("status") == "finished" else "failed"] += 1
        for key, name in (("wait_ms", "wait"), ("processing_ms", "processing")):
            if record.get(key) is not None:
                row[name].append(_number(record[key]))
    buckets = []
    for i, row in enumerate(rows):
        total = row["completed"] + row["failed"]
        buckets.append({
            "start": round(start + i * bucket_s, 3), "completed": row["completed"], "failed": row["failed"],
            "per_second": round(total / bucket_s, 3),
            "queue_wait_ms": {f"p{p}": percentile(row["wait"], p) for p in (50, 95)},
            "processing_ms": {f"p{p}": percentile(row["processing"], p) for p in (50, 95)},
        })
    return {"timestamp": now, "window_s": count * bucket_s, "bucket_s": bucket_s, "buckets": buckets}
