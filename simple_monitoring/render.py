"""Snapshot → rich renderables (pure: no I/O, no clock), and renderable → text.

Keeping rendering a pure function of the data is what lets a test draw one dashboard
frame to a string, and lets `metrics` and `monitor` share their wording.
"""
from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Iterable, Sequence

from rich import box
from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from simple_monitoring.collect import Snapshot

SPARK = "▁▂▃▄▅▆▇█"
STATE_STYLE = {"idle": "green", "busy": "yellow", "warming": "cyan", "stopping": "magenta", "paused": "red"}
ACTION_STYLE = {"SCALE_UP": "bold red", "SCALE_DOWN": "yellow", "MAINTAIN": "green"}


def fmt(value: object, unit: str = "", digits: int = 1) -> str:
    """A number for humans; '-' when unknown."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def ms(value: object) -> str:
    """Milliseconds: one decimal below 10 ms, whole numbers above ('-' when unknown)."""
    if not isinstance(value, (int, float)):
        return "-"
    return f"{value:.1f} ms" if value < 10 else f"{value:.0f} ms"


def ms_pair(first: object, second: object) -> str:
    """'145/276 ms' (one unit for both), or '-' when there are no samples yet."""
    if not isinstance(first, (int, float)) or not isinstance(second, (int, float)):
        return "-"
    return f"{ms(first)[:-3]}/{ms(second)}"


def sparkline(values: Sequence[float], width: int = 60) -> str:
    """Unicode block sparkline of the last `width` values, scaled to their maximum."""
    tail = list(values)[-width:]
    if not tail:
        return ""
    top = max(tail)
    if top <= 0:
        return SPARK[0] * len(tail)
    return "".join(SPARK[min(len(SPARK) - 1, int(v / top * (len(SPARK) - 1) + 0.5))] for v in tail)


def clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%H:%M:%S UTC")


# --- pieces --------------------------------------------------------------------------------
def header(snap: Snapshot) -> Text:
    text = Text()
    text.append("Pixelfleet  ", style="bold")
    text.append(f"{snap.url}  {clock(snap.taken_at)}  ")
    if not snap.api_ok:
        text.append("API DOWN", style="bold white on red")
        text.append(f"  {snap.error}  — retrying", style="red")
        return text
    text.append("API ok", style="bold green")
    redis = snap.redis_ok
    text.append("  Redis ")
    text.append({True: "ok", False: "DOWN", None: "?"}[redis],
                style={True: "green", False: "bold red", None: "yellow"}[redis])
    if snap.error:
        text.append(f"  {snap.error}", style="red")
    return text


def system_text(snap: Snapshot) -> Text:
    """Two compact lines: the host, then the fleet's load (the original metrics fields)."""
    m = snap.metrics
    text = Text()
    text.append("System  ", style="bold blue")
    text.append(f"CPU {fmt(m.get('cpu_usage'), '%')}  Memory {fmt(m.get('memory_usage'), '%')} "
                f"({fmt(m.get('memory_available_gb'), ' GB', 2)} available)\n")
    text.append("Fleet   ", style="bold blue")
    text.append(f"{fmt(m.get('active_workers'))} workers, {fmt(m.get('busy_workers'))} busy "
                f"({fmt(m.get('utilization'), '%')})  queued {fmt(m.get('queue_length'))}  "
                f"success {fmt(m.get('success_rate'), '%')}")
    if m.get("storage"):
        text.append("\nStorage ", style="bold blue")
        text.append(storage_summary(m["storage"]), style="bold red" if m["storage"].get("full") else None)
    return text


def storage_summary(storage: dict) -> str:
    """`redis 12.3 MB of 30 MB (41%), mark 22.5 MB, 1.2 MB reserved for 4 task(s)` (+ FULL)."""
    if not storage:
        return "-"
    mb = 2**20

    def size(key: str) -> str:
        value = storage.get(key)
        return f"{float(value) / mb:.1f} MB" if isinstance(value, (int, float)) else "?"

    text = (f"{storage.get('backend', '?')} {size('used_bytes')} of {size('budget_bytes')} "
            f"({fmt(storage.get('used_percent'), '%')}), mark {size('high_water_bytes')}, "
            f"{size('reserved_bytes')} reserved for {fmt(storage.get('pending_tasks'))} task(s)")
    return text + ("  FULL: new submits get 503" if storage.get("full") else "")


def _by_capability(snap: Snapshot) -> str:
    by_cap = snap.metrics.get("workers_by_capability") or {}
    return ", ".join(f"{cap} {e.get('total', 0)}" for cap, e in sorted(by_cap.items())
                     if isinstance(e, dict))


def workers_table(snap: Snapshot) -> Table:
    caps = _by_capability(snap)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False,
                  title=f"Workers ({caps})" if caps else "Workers", title_justify="left",
                  title_style="bold blue")
    longest = max((len(w.name) for w in snap.workers), default=4)
    table.add_column("name", no_wrap=True, min_width=min(longest, 24))
    table.add_column("caps", no_wrap=True)
    table.add_column("backend", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("task", no_wrap=True, max_width=14)
    table.add_column("beat", justify="right", no_wrap=True)
    table.add_column("done", justify="right", no_wrap=True)
    table.add_column("fail", justify="right", no_wrap=True)
    for w in snap.workers:
        backend = w.backend + (f" {w.device}" if w.device else "")
        table.add_row(w.name, ",".join(w.capabilities), backend,
                      Text(w.state, style=STATE_STYLE.get(w.state, "")),
                      w.current_task or "-", fmt(w.heartbeat_age_s, "s"),
                      str(w.done), Text(str(w.failed), style="red" if w.failed else ""))
    if not snap.workers:
        table.add_row(Text("no live worker", style="bold red"), "", "", "", "", "", "", "")
    return table


def queue_label(name: str) -> str:
    """'pixelfleet:cpu+io' → 'cpu+io' (the capability set is what an operator acts on)."""
    return name.split(":", 1)[1] if ":" in name else name


def queues_text(snap: Snapshot) -> Text:
    """Depth per capability set: single classes always, combined sets only when not empty."""
    text = Text()
    text.append("Queue depth  ", style="bold blue")
    queues = sorted(snap.queues.items(), key=lambda kv: (-kv[1], len(kv[0]), kv[0]))
    shown = [(n, d) for n, d in queues if d or "+" not in queue_label(n)]
    for i, (name, depth) in enumerate(shown):
        text.append("  " if i else "")
        text.append(f"{queue_label(name)} ")
        text.append(str(depth), style="bold yellow" if depth else "dim")
    hidden = len(queues) - len(shown)
    if hidden:
        text.append(f"  (+{hidden} empty)", style="dim")
    if not queues:
        text.append("-")
    return text


def latency_text(snap: Snapshot) -> Text:
    lat = snap.latency
    text = Text()
    text.append("Latency      ", style="bold blue")
    parts = []
    for key, label in (("queue_wait_ms", "wait"), ("processing_ms", "processing")):
        row = lat.get(key) or {}
        parts.append(f"{label} p50/p95 {ms_pair(row.get('p50'), row.get('p95'))}")
    text.append("  │  ".join(parts))
    text.append(f"  (n={fmt(lat.get('samples'))})", style="dim")
    return text


def throughput_text(snap: Snapshot, rates: Sequence[float], width: int = 40) -> Text:
    tp = snap.throughput
    text = Text()
    text.append("Throughput   ", style="bold blue")
    for window in ("1m", "5m"):
        w = tp.get(window) or {}
        text.append(f"{window} {fmt(w.get('per_minute'))}/min ({fmt(w.get('completed'))} ok, "
                    f"{fmt(w.get('failed'))} failed)  ")
    text.append("\n             ")
    if rates:
        text.append(sparkline(rates, width), style="cyan")
        text.append(f" now {rates[-1]:.2f}/s, max {max(rates):.2f}/s")
    else:
        text.append("(sparkline starts after two readings)", style="dim")
    return text


def recommendations_text(snap: Snapshot) -> Text:
    text = Text()
    text.append("Advice       ", style="bold blue")
    s = snap.scaling
    if s:
        action = str(s.get("action", "?"))
        text.append(f"{action}", style=ACTION_STYLE.get(action, "bold"))
        text.append(f" {fmt(s.get('current_workers'))}→{fmt(s.get('recommended'))} workers "
                    f"({s.get('urgency', '-')}, confidence {fmt(s.get('confidence'), '', 2)}): "
                    f"{s.get('reason', '')}")
    for rec in snap.recommendations:
        if rec.get("action") != "MAINTAIN" or rec.get("queued"):
            text.append(f"\n  • {rec.get('message', '')}",
                        style="red" if rec.get("action") == "SCALE_UP" else "")
    return text


# --- whole views ---------------------------------------------------------------------------
def render_dashboard(snap: Snapshot, rates: Sequence[float] = ()) -> RenderableType:
    """One frame of `monitor`; compact enough for an 80×24 terminal with a few workers."""
    parts: list[RenderableType] = [header(snap)]
    if not snap.api_ok:
        parts.append(Panel(Text(f"Cannot reach the API at {snap.url}.\n{snap.error}\n\n"
                                "Retrying every interval. Press q or Ctrl-C to quit.",
                                style="red"), title="API down", border_style="red"))
        return Group(*parts)
    parts += [system_text(snap), workers_table(snap), queues_text(snap), latency_text(snap),
              throughput_text(snap, rates), recommendations_text(snap),
              Text("q or Ctrl-C quits", style="dim")]
    return Group(*parts)


def metrics_lines(snap: Snapshot) -> list[str]:
    """`metrics` in the original layout: system, workers, scaling; then throughput, latency."""
    if not snap.api_ok:
        return [f"API unreachable at {snap.url}: {snap.error}"]
    m, s, lat, tp = snap.metrics, snap.scaling, snap.latency, snap.throughput
    lines = ["System:",
             f"  CPU usage:         {fmt(m.get('cpu_usage'), '%')}",
             f"  Memory usage:      {fmt(m.get('memory_usage'), '%')}",
             f"  Memory available:  {fmt(m.get('memory_available_gb'), ' GB', 2)}",
             "Workers:",
             f"  Active:            {fmt(m.get('active_workers'))}",
             f"  Busy:              {fmt(m.get('busy_workers'))}",
             f"  Utilization:       {fmt(m.get('utilization'), '%')}",
             f"  Queue length:      {fmt(m.get('queue_length'))}",
             f"  Success rate:      {fmt(m.get('success_rate'), '%')}",
             f"Storage:             {storage_summary(m.get('storage') or {})}",
             "Scaling recommendation:",
             f"  Current workers:   {fmt(s.get('current_workers'))}",
             f"  Recommended:       {fmt(s.get('recommended'))}",
             f"  Action:            {fmt(s.get('action'))}",
             f"  Reason:            {fmt(s.get('reason'))}",
             f"  Confidence:        {fmt(s.get('confidence'), '', 2)}",
             f"  Urgency:           {fmt(s.get('urgency'))}",
             "Throughput:"]
    for window in ("1m", "5m"):
        w = tp.get(window) or {}
        lines.append(f"  {window}: {fmt(w.get('per_minute'))}/min  ({fmt(w.get('completed'))} "
                     f"completed, {fmt(w.get('failed'))} failed)")
    lines.append(f"Latency (last {fmt(lat.get('window_s'))} s, {fmt(lat.get('samples'))} tasks):")
    for key, label in (("queue_wait_ms", "queue wait"), ("processing_ms", "processing")):
        row = lat.get(key) or {}
        lines.append(f"  {label + ':':<12} " + "  ".join(
            f"{p} {fmt(row.get(p), ' ms')}" for p in ("p50", "p95", "p99")))
    queues = ", ".join(f"{k}={v}" for k, v in sorted(snap.queues.items())) or "-"
    lines.append(f"Queues: {queues}")
    advice = [r.get("message", "") for r in snap.recommendations
              if r.get("action") != "MAINTAIN" or r.get("queued")]
    lines += ["Recommendations:"] + [f"  • {a}" for a in advice or ["none"]]
    return lines


def render_to_text(renderable: RenderableType, width: int = 120, color: bool = False) -> str:
    """Draw a renderable into a string, as a terminal of `width` columns would show it."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=color, color_system=None
                      if not color else "standard", legacy_windows=False)
    console.print(renderable)
    return buffer.getvalue()


def check_lines(results: Iterable[tuple[bool, str, str, bool]]) -> list[str]:
    """✓/✗ lines for `check`: (ok, name, detail, counted)."""
    return [f"{'✓' if ok else '✗'} {name}: {detail}" + ("" if counted else "  (informational)")
            for ok, name, detail, counted in results]
