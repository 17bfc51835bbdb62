"""`make bench-e2e`: Pixelfleet against thumbor, end to end, on photo-like JPEGs.

Usage: python -m bench.e2e [--seconds 15] [--rounds 2] [--clients 8] [--json out.json]
                           [--smoke] [--no-thumbor] [--no-poll] [--distinct]

The workload is the most common image-service job (the one imgproxy's published
benchmark uses): a JPEG fitted into 512 px, JPEG out (quality 80, thumbor's default).
Both systems run on this machine, started as their users start them (bench/servers.py),
get the same images at the same concurrency (closed loop, `--clients` threads), and
take turns: for each size, round after round, Pixelfleet then thumbor, so drifting
machine load hits both alike. Pixelfleet is asked through its public HTTP API in one
call (`POST /api/tasks/?wait=60`); `poll 10 ms` is the same clients without `wait`,
polling the status every 10 ms, to show that polling does not collapse the fleet.

Every client sends the same JPEG, as imgproxy's benchmark does; the fleet stores inputs by
content, so an upload that an earlier task still holds is not sent to Redis again.
`--distinct` makes every upload differ (a random JPEG comment) to measure without that.

Prints images/s, p50/p95/p99 per system and size, the ratios Pixelfleet/thumbor and
poll/wait, and the CPU time each image cost each kind of process (bench/cpu.py: API,
workers, Redis, thumbor, and the clients themselves). `--smoke`: two small images, 1.5 s runs, one round, 2 clients and one worker, and
thumbor only if installed (it is part of `make test`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import cpu, load, photos, servers

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "bench"
BOX = 512
QUALITY = 80
POLL_INTERVAL_S = 0.010


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    sizes = photos.SMOKE_SIZES if args.smoke else photos.SIZES
    images = photos.ensure_photos(work / "images", sizes)
    use_thumbor = not args.no_thumbor and servers.thumbor_installed()
    started = time.time()
    fleet = servers.start_pixelfleet(work, workers=args.fleet_workers)
    peer = None
    try:
        if use_thumbor:
            peer = servers.start_thumbor(work, images=work / "images", quality=QUALITY)
        results: dict[str, Any] = {}
        for name, path in sorted(images.items(), key=lambda item: sizes[item[0]][0] * sizes[item[0]][1]):
            data = path.read_bytes()
            systems = {"pixelfleet": load.pixelfleet_wait(fleet.url, data, BOX, QUALITY, distinct=args.distinct)}
            if not args.no_poll:
                systems["pixelfleet_poll_10ms"] = load.pixelfleet_poll(fleet.url, data, BOX, QUALITY, POLL_INTERVAL_S)
            if peer is not None:
                systems["thumbor"] = load.thumbor(peer.url, path.name, BOX)
            totals: dict[str, load.RunResult] = {}
            cpu_s: dict[str, Counter] = {system: Counter() for system in systems}
            for round_no in range(args.rounds):
                for system, fetch in systems.items():
                    root = (peer if system == "thumbor" else fleet).proc.pid
                    before = cpu.snapshot(root)
                    outcome = load.closed_loop(fetch, args.clients, args.seconds)
                    cpu_s[system] += cpu.spent(before, cpu.snapshot(root))
                    totals[system] = totals[system].merged(outcome) if system in totals else outcome
                    print(f"  {name} round {round_no + 1} {system}: {outcome.summary()['images_per_s']} images/s",
                          file=sys.stderr, flush=True)
            width, height = sizes[name]
            entry: dict[str, Any] = {"input": f"{width}x{height} JPEG q{photos.QUALITY}, {len(data)} bytes",
                                     **{system: {**result.summary(), "cpu_ms_per_image":
                                                 cpu.per_image(cpu_s[system], len(result.latencies))}
                                        for system, result in totals.items()}}
            entry["ratio_pixelfleet_thumbor"] = _ratio(entry, "pixelfleet", "thumbor")
            entry["ratio_poll_wait"] = _ratio(entry, "pixelfleet_poll_10ms", "pixelfleet")
            results[name] = entry
    finally:
        if peer is not None:
            peer.stop()
        fleet.stop()
    return {
        "benchmark": "bench-e2e", "workload": f"fit into {BOX} px, JPEG q{QUALITY} out",
        "clients": args.clients, "seconds_per_run": args.seconds, "rounds": args.rounds,
        "distinct_uploads": args.distinct,
        "fleet_workers": args.fleet_workers or "make run default (worker-1 io, worker-2 cpu, worker-3 all)",
        "thumbor": "7.8.0, file loader, 2 processes, no storage" if use_thumbor else "not run (not installed)",
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
                    "python": platform.python_version()},
        "wall_s": round(time.time() - started, 1), "results": results,
    }


def _ratio(entry: dict[str, Any], top: str, bottom: str) -> float | None:
    a = (entry.get(top) or {}).get("images_per_s")
    b = (entry.get(bottom) or {}).get("images_per_s")
    return round(a / b, 2) if a and b else None


def render(report: dict[str, Any]) -> str:
    lines = [f"bench-e2e: {report['workload']}, {report['clients']} clients, closed loop, "
             f"{report['rounds']} x {report['seconds_per_run']} s per system, alternating; "
             f"load avg {report['machine']['load_avg_1m']} on {report['machine']['cpus']} CPUs",
             "",
             "| input | system | images/s | p50 ms | p95 ms | p99 ms | errors |",
             "|---|---|---|---|---|---|---|"]
    for entry in report["results"].values():
        for system in ("pixelfleet", "pixelfleet_poll_10ms", "thumbor"):
            row = entry.get(system)
            if row:
                lines.append(f"| {entry['input']} | {system} | {row['images_per_s']} | {row['p50_ms']} | "
                             f"{row['p95_ms']} | {row['p99_ms']} | {row['errors']} |")
    lines.append("")
    for name, entry in report["results"].items():
        lines.append(f"{name}: Pixelfleet/thumbor = {entry['ratio_pixelfleet_thumbor']}, "
                     f"poll 10 ms / wait = {entry['ratio_poll_wait']}")
    lines += ["", "CPU ms per image (process CPU time over the runs; `server` is all but the client):"]
    for entry in report["results"].values():
        for system in ("pixelfleet", "pixelfleet_poll_10ms", "thumbor"):
            costs = (entry.get(system) or {}).get("cpu_ms_per_image")
            if costs:
                lines.append(f"  {entry['input'].split(' ')[0]} {system}: "
                             + ", ".join(f"{kind} {ms}" for kind, ms in costs.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="s per run (default 15)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per system and size, alternating (default 2)")
    parser.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--json", metavar="PATH", help="also write the report as JSON here")
    parser.add_argument("--smoke", action="store_true", help="tiny and quick: what `make test` runs")
    parser.add_argument("--no-thumbor", action="store_true", help="Pixelfleet only")
    parser.add_argument("--no-poll", action="store_true", help="skip the polling clients")
    parser.add_argument("--distinct", action="store_true",
                        help="every `wait` upload differs (a random JPEG comment): nothing is already stored")
    parser.add_argument("--fleet-workers", default=None, help='the fleet\'s --workers (default: make run\'s)')
    parser.add_argument("--work", default=str(WORK), help="folder for images, logs and Redis data")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.rounds, args.clients = min(args.seconds, 1.5), 1, min(args.clients, 2)
        args.fleet_workers = args.fleet_workers or "smoke:io"
    if not servers.thumbor_installed() and not args.no_thumbor:
        print(f"thumbor is not installed ({servers.THUMBOR_BIN}); `make bench-e2e` installs it. "
              "Running Pixelfleet alone.", file=sys.stderr)
    report = run(args)
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
