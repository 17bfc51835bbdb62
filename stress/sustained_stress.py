"""sustained_stress.py [--depth D --seconds S] — keeps the queue at a target depth.

Every --check seconds it reads the queue length from /api/metrics/ and tops the queue up
to D, for S seconds; shows the throughput the fleet sustains when it is never starved.
Usage: python stress/sustained_stress.py --depth 10 --seconds 30 [--url URL]
"""
from __future__ import annotations

if __package__ in (None, ""):
    import _bootstrap  # noqa: F401  (script run by path)

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from stress.client import ApiClient
from stress.common import (MAX_CONCURRENCY, MAX_SECONDS, MAX_TASKS, base_parser, bounded,
                           exit_code, finish, main_guard, setup)

MAX_DEPTH = 1_000


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("sustained_stress", __doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=10, help="target queue depth (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=30.0, help="duration (default %(default)s)")
    parser.add_argument("--check", type=float, default=0.2,
                        help="seconds between depth readings (default %(default)s)")
    parser.add_argument("--max-tasks", type=int, default=2_000,
                        help=f"stop after this many submissions (≤ {MAX_TASKS}, default %(default)s)")
    args = parser.parse_args(argv)
    bounded(args.depth, 1, MAX_DEPTH, "--depth")
    bounded(args.seconds, 0.1, MAX_SECONDS, "--seconds")
    bounded(args.check, 0.05, 60, "--check")
    bounded(args.max_tasks, 1, MAX_TASKS, "--max-tasks")
    client, runner, pipeline = setup(args)
    started = time.time()
    end = time.monotonic() + args.seconds
    records, samples, unreadable = [], [], 0
    with ThreadPoolExecutor(max_workers=min(MAX_CONCURRENCY, args.depth)) as pool:
        while time.monotonic() < end and len(records) < args.max_tasks:
            depth = queue_depth(client)
            if depth is None:
                unreadable += 1
            else:
                samples.append([round(time.time() - started, 3), depth])
                need = min(args.depth - depth, args.max_tasks - len(records))
                if need > 0:
                    base = len(records)
                    records += list(pool.map(lambda i: runner.submit(base + i, pipeline),
                                             range(need)))
            time.sleep(args.check)
    runner.wait(records, args.timeout)
    depths = [d for _, d in samples]
    notes = []
    if depths:
        notes.append(f"queue depth read before each top-up: min {min(depths)}, mean "
                     f"{sum(depths) / len(depths):.1f}, max {max(depths)} (target {args.depth})")
    if unreadable:
        notes.append(f"{unreadable} depth readings failed (/api/metrics/ unavailable)")
    if len(records) >= args.max_tasks:
        notes.append(f"stopped at --max-tasks {args.max_tasks}")
    report = finish("sustained_stress", args, client, records, started,
                    {"depth": args.depth, "seconds": args.seconds, "filters": args.filters},
                    notes, extra={"depth_samples": samples})
    return exit_code(report)


if __name__ == "__main__":
    main_guard(main)
