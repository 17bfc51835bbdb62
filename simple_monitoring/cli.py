"""Pixelfleet operator CLI: check | metrics | monitor | stress N.

Usage:
  python simple_monitoring/cli.py check [--json] [--expect-gpu]
  python simple_monitoring/cli.py metrics [--json]
  python simple_monitoring/cli.py monitor [--interval 2] [--once]
  python simple_monitoring/cli.py stress 20 [--concurrency 8] [--filters blur]
Every command takes --url (env PIXELFLEET_URL, default http://localhost:8000) and
--token (env PIXELFLEET_TOKEN). It talks only HTTP to the API.
"""
from __future__ import annotations

if __package__ in (None, ""):          # `python simple_monitoring/cli.py`
    import sys as _sys
    from pathlib import Path as _Path

    _sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))

import argparse
import json
import sys
from typing import Sequence

from simple_monitoring.checks import run_checks
from simple_monitoring.collect import ThroughputHistory, fetch_snapshot
from simple_monitoring.keys import KeyReader
from simple_monitoring.render import check_lines, metrics_lines, render_dashboard, render_to_text
from stress.client import ApiClient, default_token, default_url


def cmd_check(args: argparse.Namespace) -> int:
    results = run_checks(ApiClient(args.url, args.token), expect_gpu=args.expect_gpu,
                         task_timeout=args.task_timeout)
    counted = [r for r in results if r.counted]
    passed = sum(r.ok for r in counted)
    failed = len(counted) - passed
    if args.json:
        print(json.dumps({"passed": passed, "failed": failed,
                          "checks": [r.__dict__ for r in results]}, indent=2))
    else:
        print("\n".join(check_lines(r.as_tuple() for r in results)))
        print(f"Passed: {passed}  Failed: {failed}")
    return 1 if failed else 0


def cmd_metrics(args: argparse.Namespace) -> int:
    snap = fetch_snapshot(ApiClient(args.url, args.token), timeout=10.0)
    if args.json:
        print(json.dumps(snap.metrics if snap.api_ok and snap.metrics else snap.to_json(),
                         indent=2, default=str))
    else:
        print("\n".join(metrics_lines(snap)))
    return 0 if snap.api_ok and snap.metrics else 1


def cmd_monitor(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.live import Live

    client = ApiClient(args.url, args.token)
    history = ThroughputHistory()
    if args.once:
        snap = fetch_snapshot(client)
        print(render_to_text(render_dashboard(snap), width=args.width or 120), end="")
        return 0 if snap.api_ok else 1
    console = Console()
    try:
        with KeyReader() as keys, Live(console=console, screen=True, auto_refresh=False) as live:
            while True:
                snap = fetch_snapshot(client, timeout=min(5.0, max(1.0, args.interval)))
                history.add(snap)
                live.update(render_dashboard(snap, history.values()), refresh=True)
                if keys.wait_for_quit(args.interval):
                    break
    except KeyboardInterrupt:
        pass
    return 0


def cmd_stress(args: argparse.Namespace) -> int:
    from stress import burst_stress
    from stress.common import exit_code

    return exit_code(burst_stress.run(args, script="simple_monitoring stress"))


def build_parser() -> argparse.ArgumentParser:
    from stress import burst_stress
    from stress.common import add_common_options

    parser = argparse.ArgumentParser(prog="simple_monitoring", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=default_url(), help="API base URL (env PIXELFLEET_URL)")
    parser.add_argument("--token", default=default_token(), help="bearer token (env PIXELFLEET_TOKEN)")
    # the same options after the command; SUPPRESS keeps a value given before it
    conn = argparse.ArgumentParser(add_help=False)
    conn.add_argument("--url", default=argparse.SUPPRESS, help="API base URL")
    conn.add_argument("--token", default=argparse.SUPPRESS, help="bearer token")
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", parents=[conn], help="one ✓/✗ line per component; exit 1 on failure")
    check.add_argument("--json", action="store_true")
    check.add_argument("--expect-gpu", action="store_true", help="count a missing GPU worker as a failure")
    check.add_argument("--task-timeout", type=float, default=30.0,
                       help="seconds to wait for the end-to-end task (default %(default)s)")
    check.set_defaults(func=cmd_check)

    metrics = sub.add_parser("metrics", parents=[conn], help="one metrics snapshot")
    metrics.add_argument("--json", action="store_true", help="the /api/metrics/ body as JSON")
    metrics.set_defaults(func=cmd_metrics)

    monitor = sub.add_parser("monitor", parents=[conn], help="live dashboard (q or Ctrl-C quits)")
    monitor.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    monitor.add_argument("--once", action="store_true", help="print one frame and exit")
    monitor.add_argument("--width", type=int, default=None, help="columns for --once")
    monitor.set_defaults(func=cmd_monitor)

    stress = sub.add_parser("stress", help="submit N tasks at once and report (as burst_stress)")
    add_common_options(stress)
    burst_stress.add_arguments(stress)
    for action in stress._actions:
        if action.dest in ("url", "token"):
            action.default = argparse.SUPPRESS
    stress.set_defaults(func=cmd_stress)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "monitor" and args.interval <= 0:
        raise SystemExit("--interval must be positive")
    return args.func(args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
