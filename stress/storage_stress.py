"""storage_stress.py N — N distinct uploads through the API; what storage keeps per task.

Generates N different photo-like JPEGs (--size, default the issue's 2040x1356), submits
each (at most --depth in flight), fetches every result (and with --delete, deletes it),
and reads the storage from /api/metrics/ before and after: Redis used_memory growth per
task, what is left stored, and how many submits were refused for storage (503, retried
after Retry-After).
Usage: python stress/storage_stress.py 60 [--size 2040x1356] [--width 512] [--format png] [--delete]
"""
from __future__ import annotations

if __package__ in (None, ""):
    import _bootstrap  # noqa: F401  (script run by path)

import argparse
import base64
import json
import sys
import time
from typing import Any, Sequence

from stress.client import ApiClient
from stress.photos import parse_size, photo_jpeg

MB = 2**20


def storage_of(client: ApiClient, redis_url: str | None = None) -> dict[str, Any]:
    """/api/metrics/'s `storage`; with `redis_url`, used_memory read from Redis itself (for a
    fleet whose API does not report storage, e.g. a version before the storage budget)."""
    if redis_url:
        import redis

        memory = redis.Redis.from_url(redis_url).info("memory")
        return {"redis_used_bytes": memory["used_memory"], "used_bytes": memory["used_memory"],
                "budget_bytes": memory.get("maxmemory", 0), "backend": "redis (INFO)"}
    response = client.get("/api/metrics/")
    if response.status != 200 or not isinstance(response.data, dict):
        raise SystemExit(f"GET /api/metrics/ answered {response.status}: {response.error or response.content[:200]!r}")
    return response.data.get("storage") or {}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="storage_stress", description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="distinct uploads (1..5000)")
    parser.add_argument("--url", default=None, help="API base URL (default PIXELFLEET_URL or http://localhost:8000)")
    parser.add_argument("--token", default=None, help="bearer token (default PIXELFLEET_TOKEN)")
    parser.add_argument("--size", default="2040x1356", help="upload size WIDTHxHEIGHT")
    parser.add_argument("--width", type=int, default=512, help="resize results to this width (0: no resize)")
    parser.add_argument("--format", default="png", choices=("png", "jpeg", "webp"))
    parser.add_argument("--depth", type=int, default=8, help="tasks in flight")
    parser.add_argument("--delete", action="store_true", help="DELETE each result once fetched")
    parser.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    parser.add_argument("--json", help="write the figures to this file too")
    parser.add_argument("--redis-url", help="read used_memory from this Redis instead of /api/metrics/")
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 5000:
        raise SystemExit("N must be 1..5000")
    width, height = parse_size(args.size)
    client = ApiClient(args.url, args.token, timeout=60)
    steps = [{"filter": "resize", "params": {"width": args.width}}] if args.width else [{"filter": "grayscale"}]
    before = storage_of(client, args.redis_url)
    started = time.monotonic()
    in_flight: list[str] = []
    done = failed = refused = uploaded = sent = results = 0
    while done + failed < args.count:
        if time.monotonic() - started > args.timeout:
            print(f"timeout after {args.timeout:g} s", file=sys.stderr)
            break
        if sent < args.count and len(in_flight) < args.depth:
            data = photo_jpeg(sent, width, height)
            body = {"image_base64": base64.b64encode(data).decode(), "steps": steps, "format": args.format}
            response = client.post("/api/tasks/", json=body)
            if response.status == 503:
                refused += 1
                time.sleep(float((response.data or {}).get("error", {}).get("details", {}).get("retry_after_s", 1)))
                continue
            if response.status != 202:
                raise SystemExit(f"submit answered {response.status}: {response.content[:300]!r}")
            uploaded += len(data)
            sent += 1
            in_flight.append(response.data["task_id"])
            continue
        for task_id in list(in_flight):
            status = (client.get(f"/api/tasks/{task_id}/").data or {}).get("status")
            if status in ("finished", "failed"):
                in_flight.remove(task_id)
                if status == "failed":
                    failed += 1
                    continue
                done += 1
                fetched = client.get(f"/api/tasks/{task_id}/result/")
                if fetched.status != 200:
                    raise SystemExit(f"result of {task_id} could not be fetched")
                results += len(fetched.content)
                if args.delete:
                    client.request("DELETE", f"/api/tasks/{task_id}/result/")
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    after = storage_of(client, args.redis_url)
    grown = int(after.get("redis_used_bytes", 0)) - int(before.get("redis_used_bytes", 0))
    figures = {
        "tasks": done, "failed": failed, "refused_503": refused, "seconds": round(elapsed, 1),
        "upload_kb": round(uploaded / max(sent, 1) / 1024, 1), "size": args.size, "format": args.format,
        "resize_width": args.width, "deleted_results": args.delete, "backend": after.get("backend"),
        "redis_used_growth_mb": round(grown / MB, 2),
        "redis_used_growth_kb_per_task": round(grown / max(done, 1) / 1024, 1),
        "average_output_kb": round(results / max(done, 1) / 1024, 1),
        "stored_used_mb": round(int(after.get("used_bytes", 0)) / MB, 2),
        "budget_mb": round(int(after.get("budget_bytes", 0)) / MB, 1),
    }
    print(f"{done} tasks ({failed} failed, {refused} submits refused for storage) in {elapsed:.1f} s; "
          f"uploads {figures['upload_kb']:.0f} KB ({args.size}), results {figures['average_output_kb']:.0f} KB "
          f"({args.format}{', deleted' if args.delete else ''})")
    print(f"Redis used_memory grew {figures['redis_used_growth_mb']:.1f} MB = "
          f"{figures['redis_used_growth_kb_per_task']:.1f} KB per task; storage now "
          f"{figures['stored_used_mb']:.1f} MB of a {figures['budget_mb']:.0f} MB budget ({after.get('backend')})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
