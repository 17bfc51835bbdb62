"""sustained_stress.py [--depth D --seconds S] — keeps D tasks in flight for S seconds.

Closed loop: D senders, each submits a task, follows it to its end and at once submits
the next, so the fleet is never starved by the client's pacing. Why not "read the queue
length, top it up, sleep" (the first version): on a fleet that runs a task in a few ms,
the queue was empty at every reading and the run never held any depth (--depth 4: min 0,
mean 0.2, max 1). The report says how many tasks the fleet really held — queued plus
running, time-weighted, from the server's own submitted/started/ended times — and, when
that stays below D, that the submission path (not the workers) is the bottleneck.
Usage: python stress/sustained_stress.py --depth 10 --seconds 30 [--url URL]
"""
from __future__ import annotations

if __package__ in (None, ""):
    import _bootstrap  # noqa: F401  (script run by path)

import threading
import time
from typing import Sequence

from stress.client import ApiClient
from stress.common import (MAX_CONCURRENCY, MAX_SECONDS, MAX_TASKS, base_parser, bounded,
                           exit_code, finish, main_guard, setup)
from stress.report import TERMINAL, TaskRecord

MAX_DEPTH = MAX_CONCURRENCY


def queue_depth(client: ApiClient) -> int | None:
    """Tasks waiting in all queues, as /api/metrics/ reports it (None when unreadable)."""
    resp = client.get("/api/metrics/")
    if not resp.ok or not isinstance(resp.data, dict):
        return None
    if isinstance(resp.data.get("queue_length"), int):
        return resp.data["queue_length"]
    queues = resp.data.get("queues")
    if isinstance(queues, dict):
        return sum(_depth_of(v) for v in queues.values())
    return None


def _depth_of(value: object) -> int:
    if isinstance(value, dict):
        value = value.get("depth", value.get("queued", 0))
    return int(value) if isinstance(value, (int, float)) else 0


def held_by_fleet(records: Sequence[TaskRecord], start: float, end: float) -> dict[str, float]:
    """Time-weighted mean of tasks queued and running in [start, end], from server times."""
    span = max(end - start, 1e-9)
    queued = running = 0.0
    for record in records:
        submitted, started, ended = (record.extra.get("server_span") or [None, None, None])
        if submitted is None or ended is None:
            continue
        started = started if started is not None else ended
        queued += max(0.0, min(started, end) - max(submitted, start))
        running += max(0.0, min(ended, end) - max(started, start))
    return {"queued": round(queued / span, 2), "running": round(running / span, 2),
            "total": round((queued + running) / span, 2)}


class ClosedLoop:
    """`depth` senders; each keeps one task in flight until `end` or the task budget is spent."""

    def __init__(self, runner, pipeline, depth: int, end: float, max_tasks: int, poll_s: float) -> None:
        self.runner, self.pipeline, self.depth = runner, pipeline, depth
        self.end, self.max_tasks, self.poll_s = end, max_tasks, poll_s
        self.records: list[TaskRecord] = []
        self.in_flight = 0
        self._lock = threading.Lock()

    def _next_index(self) -> int | None:
        with self._lock:
            if time.monotonic() >= self.end or len(self.records) >= self.max_tasks:
                return None
            self.records.append(TaskRecord(index=len(self.records)))   # placeholder, replaced below
            self.in_flight += 1
            return len(self.records) - 1

    def _sender(self) -> None:
        while (index := self._next_index()) is not None:
            record = self.runner.submit(index, self.pipeline)
            with self._lock:
                self.records[index] = record
            while (record.accepted and record.final_status not in TERMINAL
                   and time.monotonic() < self.end + 60):
                time.sleep(self.poll_s)
                self.runner.poll(record)
            with self._lock:
                self.in_flight -= 1
            if not record.accepted:
                time.sleep(self.poll_s)      # a refusal must not become a hot loop

    def run(self, on_sample) -> None:
        threads = [threading.Thread(target=self._sender, daemon=True) for _ in range(self.depth)]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            on_sample(self.in_flight)
            time.sleep(max(self.poll_s, 0.25))


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("sustained_stress", __doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=10, help="tasks kept in flight (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration (default %(default)s)")
    parser.add_argument("--check", type=float, default=0.1,
                        help="seconds between status polls of a task in flight (default %(default)s)")
    parser.add_argument("--max-tasks", type=int, default=2_000,
                        help=f"stop after this many submissions (≤ {MAX_TASKS}, default %(default)s)")
    args = parser.parse_args(argv)
    bounded(args.depth, 1, MAX_DEPTH, "--depth")
    bounded(args.seconds, 0.1, MAX_SECONDS, "--seconds")
    bounded(args.check, 0.02, 60, "--check")
    bounded(args.max_tasks, 1, MAX_TASKS, "--max-tasks")
    client, runner, pipeline = setup(args)
    started = time.time()
    loop = ClosedLoop(runner, pipeline, args.depth, time.monotonic() + args.seconds, args.max_tasks, args.check)
    samples: list[list[float]] = []          # [t, in flight, queue depth from /api/metrics/]
    last_read = [0.0]

    def on_sample(in_flight: int) -> None:
        depth = None
        if time.monotonic() - last_read[0] >= 1.0:      # /api/metrics/ once a second, not per poll
            last_read[0] = time.monotonic()
            depth = queue_depth(client)
        samples.append([round(time.time() - started, 3), in_flight, depth])

    loop.run(on_sample)
    records = [r for r in loop.records if r.sent_at]
    runner.wait(records, args.timeout)
    spans = [r.extra["server_span"] for r in records if r.extra.get("server_span") and r.extra["server_span"][0]]
    held = held_by_fleet(records, min(s[0] for s in spans), max(s[2] for s in spans if s[2])) if spans else None
    in_flight = [s[1] for s in samples]
    depths = [s[2] for s in samples if s[2] is not None]
    notes = []
    if in_flight:
        notes.append(f"in flight (submitting, queued or running): mean {sum(in_flight) / len(in_flight):.1f}, "
                     f"max {max(in_flight)} (target {args.depth})")
    if held:
        notes.append(f"held by the fleet (server times, time-weighted): {held['total']:.2f} tasks = "
                     f"{held['queued']:.2f} queued + {held['running']:.2f} running (target {args.depth})")
        duration = max(s[2] for s in spans if s[2]) - min(s[0] for s in spans)
        if held["total"] < 0.75 * args.depth and duration > 0:
            slot_s = args.depth * duration
            submitting = sum(r.submit_ms or 0.0 for r in records) / 1000 / slot_s
            in_fleet = held["total"] * duration / slot_s
            verdict = ("the queue stayed near empty: the fleet runs tasks faster than they reach it"
                       if held["queued"] < 1 else "tasks did queue: the workers set the pace")
            notes.append(f"the senders' time: {submitting:.0%} waiting for POST /api/tasks/ to answer, "
                         f"{in_fleet:.0%} with the task in the fleet, the rest noticing its end (a poll every "
                         f"{args.check:g} s); {verdict}")
    if depths:
        notes.append(f"queue depth from /api/metrics/: min {min(depths)}, mean {sum(depths) / len(depths):.1f}, "
                     f"max {max(depths)}")
    if len(records) >= args.max_tasks:
        notes.append(f"stopped at --max-tasks {args.max_tasks}")
    report = finish("sustained_stress", args, client, records, started,
                    {"depth": args.depth, "seconds": args.seconds, "filters": args.filters},
                    notes, extra={"depth_samples": samples, "held_by_fleet": held})
    return exit_code(report)


if __name__ == "__main__":
    main_guard(main)
