"""burst_stress.py N — N tasks sent at once from a bounded pool of threads.

Shows how the API absorbs a spike and how long the queue takes to drain.
Usage: python stress/burst_stress.py 50 [--concurrency 16] [--url URL] [--json r.json]
"""
from __future__ import annotations

if __package__ in (None, ""):
    import _bootstrap  # noqa: F401  (script run by path)

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from stress.common import (MAX_CONCURRENCY, MAX_TASKS, base_parser, bounded, exit_code, finish,
                           main_guard, setup)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """N and --concurrency (shared with `simple_monitoring stress`)."""
    parser.add_argument("count", type=int, help=f"number of tasks (1..{MAX_TASKS})")
    parser.add_argument("--concurrency", type=int, default=16,
                        help=f"sending threads (1..{MAX_CONCURRENCY}, default %(default)s)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("burst_stress", __doc__.splitlines()[0])
    add_arguments(parser)
    return exit_code(run(parser.parse_args(argv)))


def run(args: argparse.Namespace, script: str = "burst_stress") -> dict:
    """Send args.count tasks at once, wait, print the report; returns it."""
    bounded(args.count, 1, MAX_TASKS, "N")
    bounded(args.concurrency, 1, MAX_CONCURRENCY, "--concurrency")
    client, runner, pipeline = setup(args)
    started = time.time()
    with ThreadPoolExecutor(max_workers=min(args.concurrency, args.count)) as pool:
        records = list(pool.map(lambda i: runner.submit(i, pipeline), range(args.count)))
    runner.wait(records, args.timeout)
    return finish(script, args, client, records, started,
                  {"count": args.count, "concurrency": args.concurrency,
                   "filters": args.filters})


if __name__ == "__main__":
    main_guard(main)
