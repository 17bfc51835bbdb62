"""simple_stress.py N — N tasks one after another, each awaited before the next is sent.

The baseline: what one client sees with the fleet otherwise idle.
Usage: python stress/simple_stress.py 10 [--url URL] [--filters blur:radius=2] [--json r.json]
"""
from __future__ import annotations

if __package__ in (None, ""):
    import _bootstrap  # noqa: F401  (script run by path)

import time
from typing import Sequence

from stress.common import MAX_TASKS, base_parser, bounded, exit_code, finish, main_guard, setup


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("simple_stress", __doc__.splitlines()[0])
    parser.add_argument("count", type=int, help=f"number of tasks (1..{MAX_TASKS})")
    args = parser.parse_args(argv)
    bounded(args.count, 1, MAX_TASKS, "N")
    client, runner, pipeline = setup(args)
    started = time.time()
    deadline = time.monotonic() + args.timeout
    records = []
    for i in range(args.count):
        record = runner.submit(i, pipeline)
        records.append(record)
        if record.accepted:
            runner.wait([record], max(0.0, deadline - time.monotonic()))
        if time.monotonic() >= deadline:
            break
    notes = []
    if len(records) < args.count:
        notes.append(f"stopped after {len(records)} of {args.count}: --timeout {args.timeout:g}s reached")
    report = finish("simple_stress", args, client, records, started,
                    {"count": args.count, "filters": args.filters}, notes)
    return exit_code(report)


if __name__ == "__main__":
    main_guard(main)
