"""continuous_stress.py SECONDS [--rate 5] — a fixed arrival rate for a duration, open loop.

Sends follow a timetable (t0 + i/rate) and are handed to a pool, so a slow response never
delays the next send; submit latency counts from the *scheduled* time, so queueing on the
client side is not hidden (no coordinated omission).
Usage: python stress/continuous_stress.py 30 --rate 5 [--url URL] [--plot p.png]
"""
from __future__ import annotations

if __package__ in (None, ""):
    import _bootstrap  # noqa: F401  (script run by path)

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

from stress.common import (MAX_CONCURRENCY, MAX_SECONDS, MAX_TASKS, base_parser, bounded,
                           exit_code, finish, main_guard, setup)

MAX_RATE = 200.0
T = TypeVar("T")


def open_loop(total: int, rate: float, concurrency: int,
              send: Callable[[int, float], T]) -> list[T]:
    """Call send(i, due_epoch) at t0 + i/rate from a pool, never waiting for earlier sends.

    The timetable is kept by this thread alone; a slow send occupies a pool slot, not the
    schedule. Only when all `concurrency` slots are busy does a send start late, and the
    caller measures latency from `due`, so that lateness is counted, not hidden.
    """
    started, t0 = time.time(), time.monotonic()
    futures = []
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for i in range(total):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(send, i, started + i / rate))
        return [f.result() for f in futures]


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("continuous_stress", __doc__.splitlines()[0])
    parser.add_argument("seconds", type=float, help=f"duration of sending (s, ≤ {MAX_SECONDS})")
    parser.add_argument("--rate", type=float, default=5.0,
                        help=f"tasks per second (≤ {MAX_RATE:g}, default %(default)s)")
    parser.add_argument("--concurrency", type=int, default=MAX_CONCURRENCY,
                        help="max requests in flight (default %(default)s)")
    args = parser.parse_args(argv)
    bounded(args.seconds, 0.1, MAX_SECONDS, "SECONDS")
    bounded(args.rate, 0.01, MAX_RATE, "--rate")
    bounded(args.concurrency, 1, MAX_CONCURRENCY, "--concurrency")
    total = min(MAX_TASKS, max(1, int(args.seconds * args.rate)))
    client, runner, pipeline = setup(args)
    started = time.time()
    records = open_loop(total, args.rate, args.concurrency,
                        lambda i, due: runner.submit(i, pipeline, due))
    runner.wait(records, args.timeout)
    late = [r for r in records if r.sent_at - r.scheduled_at > 0.05]
    notes = [f"{len(late)} sends left more than 50 ms after their slot "
             f"(all {args.concurrency} request slots busy)"] if late else []
    report = finish("continuous_stress", args, client, records, started,
                    {"seconds": args.seconds, "rate": args.rate, "tasks": total,
                     "concurrency": args.concurrency, "filters": args.filters}, notes)
    return exit_code(report)


if __name__ == "__main__":
    main_guard(main)
