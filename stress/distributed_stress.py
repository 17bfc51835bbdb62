"""distributed_stress.py N — N tasks spread over every filter and every capability class.

Reads the filter registry from GET /api/filters/ and cycles through: one filter of each
capability class alone, one pipeline per combination of classes (e.g. cpu+io, so the
mixed queue gets work), then every other filter alone (so every filter runs), and the
same on `device=gpu` when the fleet has a GPU worker (or --gpu). Every kind of worker gets work; the report counts tasks per queue and
per worker.
Usage: python stress/distributed_stress.py 30 [--url URL] [--gpu] [--json r.json]
"""
from __future__ import annotations

if __package__ in (None, ""):
    import _bootstrap  # noqa: F401  (script run by path)

import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from stress.client import ApiClient
from stress.common import (MAX_CONCURRENCY, MAX_TASKS, Pipeline, base_parser, bounded,
                           exit_code, finish, main_guard, parse_filters, setup)

# Filters whose defaults alone do not make a valid step (a cross-parameter rule needs one
# of several optional values). Everything else is sent with the registry's defaults.
EXAMPLE_PARAMS = {"resize": {"scale": 0.5}}


def fetch_filters(client: ApiClient) -> list[dict]:
    """The registry from GET /api/filters/ (a list, or {"filters": [...]})."""
    resp = client.get("/api/filters/")
    data = resp.data
    if isinstance(data, dict):
        data = data.get("filters") or data.get("results")
    if not resp.ok or not isinstance(data, list) or not data:
        raise SystemExit(f"cannot read the filter registry from {client.url}/api/filters/: "
                         f"{resp.error_message()}")
    return data


def gpu_workers(client: ApiClient) -> int:
    """Live workers with the gpu capability, as /api/metrics/ reports them."""
    resp = client.get("/api/metrics/")
    by_cap = (resp.data or {}).get("workers_by_capability") if isinstance(resp.data, dict) else None
    entry = (by_cap or {}).get("gpu") or {}
    return int(entry.get("total", 0)) if isinstance(entry, dict) else 0


def plan_pipelines(filters: list[dict], only: set[str] | None, with_gpu: bool) -> list[Pipeline]:
    """Every capability class (and combination) first, so even a small N reaches every kind
    of worker; then the remaining filters alone; device=gpu copies when asked."""
    chosen = [f for f in filters if not only or f["name"] in only]
    step = {f["name"]: {"filter": f["name"], "params": EXAMPLE_PARAMS.get(f["name"], {})}
            for f in chosen}
    by_class: dict[str, list[str]] = {}
    for f in chosen:
        by_class.setdefault(f.get("capability", "?"), []).append(f["name"])
    classes = sorted(by_class)
    plans = [Pipeline((step[by_class[c][0]],)) for c in classes]
    for size in range(2, len(classes) + 1):
        for combo in itertools.combinations(classes, size):
            plans.append(Pipeline(tuple(step[by_class[c][0]] for c in combo)))
    plans += [Pipeline((step[name],)) for c in classes for name in by_class[c][1:]]
    if with_gpu:
        gpu_ok = [f["name"] for f in chosen if f.get("gpu", True)]
        plans += [Pipeline((step[n],), device="gpu") for n in gpu_ok]
    return plans


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser("distributed_stress", __doc__.splitlines()[0])
    parser.set_defaults(filters="")
    parser.add_argument("count", type=int, help=f"number of tasks (1..{MAX_TASKS})")
    parser.add_argument("--concurrency", type=int, default=8,
                        help=f"sending threads (1..{MAX_CONCURRENCY}, default %(default)s)")
    parser.add_argument("--gpu", action="store_true",
                        help="also send device=gpu tasks even if no GPU worker is live")
    args = parser.parse_args(argv)
    bounded(args.count, 1, MAX_TASKS, "N")
    bounded(args.concurrency, 1, MAX_CONCURRENCY, "--concurrency")
    only = {s["filter"] for s in parse_filters(args.filters).steps} if args.filters else None
    args.filters = args.filters or "grayscale"   # setup() needs a parsable default
    client, runner, _ = setup(args)
    gpus = gpu_workers(client)
    plans = plan_pipelines(fetch_filters(client), only, with_gpu=args.gpu or gpus > 0)
    if not plans:
        raise SystemExit(f"--filters {args.filters!r} matches no filter of the registry")
    notes = [f"{len(plans)} pipelines: " + ", ".join(p.label for p in plans)]
    if not (args.gpu or gpus):
        notes.append("no live GPU worker: device=gpu tasks not sent (use --gpu to send anyway)")
    started = time.time()
    with ThreadPoolExecutor(max_workers=min(args.concurrency, args.count)) as pool:
        records = list(pool.map(lambda i: runner.submit(i, plans[i % len(plans)]),
                                range(args.count)))
    runner.wait(records, args.timeout)
    report = finish("distributed_stress", args, client, records, started,
                    {"count": args.count, "pipelines": [p.label for p in plans]}, notes)
    return exit_code(report)


if __name__ == "__main__":
    main_guard(main)
