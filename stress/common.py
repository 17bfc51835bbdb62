"""What every load script shares: options, building a submission, sending it, waiting for it.

Each script only decides *when* to send (one after another, all at once, on a timetable,
to a target depth, across every filter); everything else lives here so that their reports
are comparable. Every run is bounded in task count and in time and stops by itself.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

from stress.client import ApiClient, ApiResponse, default_token, default_url
from stress.report import TERMINAL, TaskRecord, build_report, format_report, write_json

# Hard caps: no option can make a run bigger or longer than this.
MAX_TASKS = 10_000
MAX_SECONDS = 3_600
MAX_CONCURRENCY = 64
MAX_POLLS_PER_S = 100
DEFAULT_WAIT_S = 120.0
DEFAULT_FILTERS = "grayscale"
DEFAULT_SAMPLE = "small"
TASKS_PATH = "/api/tasks/"
WAIT_PER_REQUEST_S = 20.0    # a status request waits up to this long for its task (?wait=, ≤ 60)


@dataclass(frozen=True)
class Pipeline:
    """A list of steps to submit, with a short label for reports."""

    steps: tuple[dict, ...]
    device: str = "auto"

    @property
    def label(self) -> str:
        name = "+".join(s["filter"] for s in self.steps)
        return name if self.device == "auto" else f"{name}@{self.device}"

    def as_json(self) -> list[dict]:
        return [{"filter": s["filter"], "params": dict(s.get("params", {}))} for s in self.steps]


@dataclass
class ImageSource:
    """Either one of the API's samples (sent by name) or a local file (uploaded)."""

    sample: str | None = DEFAULT_SAMPLE
    path: Path | None = None
    data: bytes = field(default=b"", repr=False)

    @classmethod
    def from_arg(cls, image: str | None) -> "ImageSource":
        if not image:
            return cls()
        path = Path(image)
        if not path.is_file():
            raise SystemExit(f"--image {image}: no such file")
        return cls(sample=None, path=path, data=path.read_bytes())


def parse_value(text: str) -> Any:
    """'2' → 2, '1.5' → 1.5, 'true' → True, anything else stays a string."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_filters(spec: str) -> Pipeline:
    """`blur:radius=2,sharpen` (or a JSON steps list) → Pipeline."""
    spec = spec.strip()
    if spec.startswith("["):
        try:
            raw = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise SystemExit(f"--filters: invalid JSON: {exc}") from None
        return Pipeline(tuple({"filter": s.get("filter") or s.get("name"),
                               "params": s.get("params", {})} for s in raw))
    steps = []
    for chunk in filter(None, (c.strip() for c in spec.split(","))):
        name, _, rest = chunk.partition(":")
        params = {}
        for pair in filter(None, rest.split(";") if rest else []):
            key, eq, value = pair.partition("=")
            if not eq:
                raise SystemExit(f"--filters: expected name=value in {chunk!r}")
            params[key.strip()] = parse_value(value.strip())
        steps.append({"filter": name.strip(), "params": params})
    if not steps:
        raise SystemExit("--filters: give at least one filter, e.g. --filters blur:radius=2")
    return Pipeline(tuple(steps))


def submission(pipeline: Pipeline, image: ImageSource) -> dict[str, Any]:
    """requests keyword arguments for POST /api/tasks/ (JSON by sample, multipart by file)."""
    if image.path is None:
        body = {"sample": image.sample, "steps": pipeline.as_json(), "device": pipeline.device}
        return {"json": body}
    form = {"steps": json.dumps(pipeline.as_json()), "device": pipeline.device}
    return {"data": form, "files": {"image": (image.path.name, image.data)}}


class Runner:
    """Sends submissions and follows the tasks to their end; collects TaskRecords."""

    def __init__(self, client: ApiClient, image: ImageSource, *, poll_interval: float = 0.2) -> None:
        self.client = client
        self.image = image
        self.poll_interval = poll_interval
        self.interrupted = False

    def submit(self, index: int, pipeline: Pipeline, scheduled_at: float | None = None) -> TaskRecord:
        """POST one task. submit_ms counts from `scheduled_at`, so a late send is not hidden."""
        sent = time.time()
        record = TaskRecord(index=index, label=pipeline.label,
                            scheduled_at=scheduled_at or sent, sent_at=sent)
        resp = self.client.post(TASKS_PATH, **submission(pipeline, self.image))
        record.submit_ms = (sent - record.scheduled_at) * 1000 + resp.elapsed_ms
        record.status_code = resp.status
        task_id = _task_id(resp)
        if resp.ok and task_id:
            record.task_id = task_id
            record.queue = (resp.data or {}).get("queue")
            record.extra["status_url"] = (resp.data or {}).get("status_url")
            record.extra["result_url"] = (resp.data or {}).get("result_url")
        else:
            record.reject_code = resp.error_code() if not resp.ok else "no_task_id"
            record.reject_message = resp.error_message()
        return record

    def poll(self, record: TaskRecord, wait: float = 0.0) -> None:
        """Fetch the status once and, when terminal, fill in the outcome.

        With `wait` > 0 the API answers when the task ends (or after `wait` s): one
        request per task instead of one per poll interval (docs/api.md, `?wait=S`).
        """
        path = record.extra.get("status_url") or f"{TASKS_PATH}{record.task_id}/"
        if wait > 0:
            resp = self.client.get(f"{path}?wait={wait:.1f}", timeout=wait + 15)
        else:
            resp = self.client.get(path)
        if not resp.ok or not isinstance(resp.data, dict):
            return
        record.extra["last_status"] = resp.data.get("status")
        record.extra["waiting_reason"] = resp.data.get("waiting_reason")
        apply_status(record, resp.data, observed_at=time.time())

    def wait(self, records: Sequence[TaskRecord], timeout: float) -> None:
        """Follow accepted, unfinished tasks until all are terminal or `timeout` s pass.

        Each status request waits server-side for its task to end (`?wait=`, at most
        WAIT_PER_REQUEST_S), oldest task first, so following N tasks costs about N
        requests, not N per poll interval. A round in which nothing ended and the API
        answered at once (e.g. its waiter limit) is paced like plain polling.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                while True:
                    pending = [r for r in records if r.accepted and r.final_status not in TERMINAL]
                    if not pending:
                        return
                    if time.monotonic() >= deadline:
                        break
                    round_started = time.monotonic()
                    wait = max(0.0, min(WAIT_PER_REQUEST_S, deadline - round_started))
                    list(pool.map(lambda r: self.poll(r, wait=wait), pending))
                    if any(r.final_status in TERMINAL for r in pending):
                        continue
                    # at most ~MAX_POLLS_PER_S status requests: polling must not become the load
                    now = time.monotonic()
                    pause = max(self.poll_interval, len(pending) / MAX_POLLS_PER_S - (now - round_started))
                    time.sleep(max(0.0, min(pause, deadline - now)))
        except KeyboardInterrupt:      # Ctrl-C while waiting: report what we have
            self.interrupted = True
        for r in records:
            if r.accepted and r.final_status not in TERMINAL:
                r.final_status = "unfinished"
                r.extra["interrupted"] = self.interrupted


def _task_id(resp: ApiResponse) -> str | None:
    data = resp.data if isinstance(resp.data, dict) else {}
    if data.get("task_id"):
        return str(data["task_id"])
    tasks = data.get("tasks")
    if isinstance(tasks, list) and tasks and isinstance(tasks[0], dict):
        return tasks[0].get("task_id")
    return None


def parse_time(value: Any) -> float | None:
    """ISO-8601 string or epoch number → epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def apply_status(record: TaskRecord, status: dict, observed_at: float) -> None:
    """Copy a terminal status dict into the record; e2e uses the server's own clock span."""
    state = status.get("status")
    if state not in TERMINAL:
        return
    record.final_status = state
    record.failure_type = status.get("failure_type")
    record.failure_reason = status.get("failure_reason") or status.get("error")
    record.queue = status.get("queue") or record.queue
    record.worker = status.get("worker") or (status.get("result") or {}).get("worker")
    submitted, ended = parse_time(status.get("submitted_at")), parse_time(status.get("ended_at"))
    # The server's own span (its clock), for scripts that ask how many tasks the fleet held.
    record.extra["server_span"] = [submitted, parse_time(status.get("started_at")), ended]
    if submitted is not None and ended is not None and ended >= submitted:
        # response time (client clock) + submitted→ended (server clock): no cross-clock skew
        record.e2e_ms = (record.submit_ms or 0.0) + (ended - submitted) * 1000
    else:
        record.e2e_ms = (observed_at - record.scheduled_at) * 1000
    record.done_at = record.scheduled_at + record.e2e_ms / 1000


# --- command line ------------------------------------------------------------------------
def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options every script takes."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_common_options(parser)
    return parser


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=default_url(),
                        help="API base URL (env PIXELFLEET_URL; default %(default)s)")
    parser.add_argument("--token", default=default_token(),
                        help="bearer token when the API requires one (env PIXELFLEET_TOKEN)")
    parser.add_argument("--image", default=None,
                        help=f"image file to upload (default: the API's '{DEFAULT_SAMPLE}' sample)")
    parser.add_argument("--filters", default=DEFAULT_FILTERS,
                        help="pipeline: 'blur:radius=2,sharpen' or a JSON steps list "
                             "(default %(default)s)")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    parser.add_argument("--timeout", type=float, default=DEFAULT_WAIT_S,
                        help="max seconds to wait for tasks to finish (default %(default)s)")
    parser.add_argument("--json", dest="json_file", metavar="FILE", help="write the full report")
    parser.add_argument("--plot", metavar="FILE.png", help="draw throughput and latency over time")


def bounded(value: float, low: float, high: float, name: str) -> float:
    """Reject out-of-range options with a message naming the limit."""
    if not low <= value <= high:
        raise SystemExit(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return value


def preflight(client: ApiClient) -> None:
    """Refuse to start when nothing answers at --url, instead of counting N refusals."""
    resp = client.get("/api/health/", timeout=5)
    if resp.status == 0:
        raise SystemExit(f"API not reachable at {client.url}: {resp.error}")


def finish(script: str, args: argparse.Namespace, client: ApiClient, records: list[TaskRecord],
           started_at: float, params: dict[str, Any], notes: Sequence[str] = (),
           extra: dict[str, Any] | None = None,
           out: Callable[[str], None] = print) -> dict[str, Any]:
    """Build, print and save the report (with script-specific `extra` fields); returns it."""
    report = build_report(script, client.url, records, started_at=started_at,
                          finished_at=time.time(), params=params, notes=notes)
    report.update(extra or {})
    out(format_report(report))
    if args.json_file:
        out(f"report written to {write_json(report, args.json_file)}")
    if args.plot:
        from stress.plot import plot_report

        out(f"plot written to {plot_report(report, args.plot)}")
    return report


def exit_code(report: dict[str, Any]) -> int:
    """0 when every submission was accepted and completed; 1 otherwise."""
    clean = (report["rejected"]["total"] == 0 and report["failed"]["total"] == 0
             and report["unfinished"] == 0 and report["completed"] == report["submitted"])
    return 0 if clean else 1


def setup(args: argparse.Namespace) -> tuple[ApiClient, Runner, Pipeline]:
    """Client, runner and pipeline from the common options; checks the API answers."""
    bounded(args.timeout, 0, MAX_SECONDS, "--timeout")
    client = ApiClient(args.url, args.token)
    pipeline = parse_filters(args.filters)
    pipeline = Pipeline(pipeline.steps, device=args.device)
    preflight(client)
    return client, Runner(client, ImageSource.from_arg(args.image)), pipeline


def main_guard(run: Callable[[Sequence[str] | None], int]) -> None:
    """Run a script's main; Ctrl-C prints a short line instead of a traceback."""
    try:
        sys.exit(run(None))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
