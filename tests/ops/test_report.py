"""Report arithmetic of the stress tools: percentiles, counts by status/type, throughput."""
from __future__ import annotations

import json

import pytest

from stress.common import Pipeline, apply_status, exit_code, parse_filters
from stress.report import TaskRecord, build_report, format_report, latency_summary, percentile, write_json


def test_percentile_interpolates_like_numpy():
    np = pytest.importorskip("numpy")
    values = [12.0, 3.0, 7.5, 100.0, 41.0, 8.0, 9.0]
    for pct in (0, 50, 95, 99, 100):
        assert percentile(values, pct) == pytest.approx(float(np.percentile(values, pct)))
    assert percentile([], 50) is None
    assert percentile([4.0], 99) == 4.0


def test_latency_summary_ignores_missing_values():
    summary = latency_summary([10.0, None, 30.0, 20.0])
    assert summary["count"] == 3
    assert summary["p50"] == 20.0 and summary["max"] == 30.0 and summary["mean"] == 20.0


def _record(i, **kw) -> TaskRecord:
    base = dict(index=i, scheduled_at=1000.0 + i, sent_at=1000.0 + i, submit_ms=5.0 + i)
    base.update(kw)
    return TaskRecord(**base)


def test_build_report_counts_every_outcome():
    records = [
        _record(0, status_code=202, task_id="a", final_status="finished", e2e_ms=100.0, done_at=1000.1),
        _record(1, status_code=202, task_id="b", final_status="finished", e2e_ms=300.0, done_at=1001.3),
        _record(2, status_code=202, task_id="c", final_status="failed", failure_type="job_failure",
                done_at=1002.5),
        _record(3, status_code=202, task_id="d", final_status="unfinished",
                extra={"last_status": "queued",
                       "waiting_reason": "no live worker has capabilities cpu"}),
        _record(4, status_code=400, reject_code="invalid_steps"),
        _record(5, status_code=0, submit_ms=None, reject_code="connection_error"),
    ]
    report = build_report("t", "http://x", records, started_at=1000.0, finished_at=1010.0)
    assert report["submitted"] == 6 and report["accepted"] == 4
    assert report["rejected"] == {"total": 2, "by_status": {"400": 1, "0": 1},
                                  "by_code": {"invalid_steps": 1, "connection_error": 1}}
    assert report["completed"] == 2
    assert report["failed"] == {"total": 1, "by_type": {"job_failure": 1}}
    assert report["unfinished"] == 1
    assert report["unfinished_by_reason"] == {"no live worker has capabilities cpu": 1}
    assert report["e2e_latency_ms"]["count"] == 2 and report["e2e_latency_ms"]["max"] == 300.0
    # 2 completed between the first send (1000.0) and the last end (1002.5)
    assert report["throughput"]["completed_per_s"] == pytest.approx(2 / 2.5, abs=0.01)
    text = format_report(report)
    for needle in ("submitted   6", "accepted    4", "rejected    2", "400: 1", "completed   2",
                   "job_failure: 1", "unfinished  1", "1 × no live worker has capabilities cpu", "p99"):
        assert needle in text
    assert exit_code(report) == 1


def test_clean_report_exits_zero(tmp_path):
    records = [_record(i, status_code=202, task_id=str(i), final_status="finished",
                       e2e_ms=50.0, done_at=1000.5 + i) for i in range(3)]
    report = build_report("t", "http://x", records, started_at=1000.0, finished_at=1004.0)
    assert exit_code(report) == 0
    path = write_json(report, tmp_path / "r.json")
    assert json.loads(path.read_text())["tasks"][2]["task_id"] == "2"


def test_apply_status_uses_server_span_plus_submit_time():
    rec = _record(0, status_code=202, task_id="a", submit_ms=20.0)
    apply_status(rec, {"status": "started"}, observed_at=1005.0)
    assert rec.final_status is None
    apply_status(rec, {"status": "finished", "submitted_at": "2026-01-01T00:00:00+00:00",
                       "ended_at": "2026-01-01T00:00:00.250000+00:00", "queue": "pixelfleet:io",
                       "worker": "w1"}, observed_at=1005.0)
    assert rec.final_status == "finished" and rec.worker == "w1"
    assert rec.e2e_ms == pytest.approx(270.0)
    failed = _record(1, status_code=202, task_id="b", submit_ms=10.0)
    apply_status(failed, {"status": "failed", "failure_type": "timeout"}, observed_at=1003.0)
    assert failed.failure_type == "timeout" and failed.e2e_ms == pytest.approx(2000.0)


def test_parse_filters_forms():
    p = parse_filters("blur:radius=2.5,sharpen:amount=1;radius=0.5,grayscale")
    assert p.as_json() == [{"filter": "blur", "params": {"radius": 2.5}},
                           {"filter": "sharpen", "params": {"amount": 1, "radius": 0.5}},
                           {"filter": "grayscale", "params": {}}]
    assert p.label == "blur+sharpen+grayscale"
    assert parse_filters('[{"filter": "edges", "params": {"threshold": 40}}]').steps[0]["params"] == {"threshold": 40}
    assert Pipeline(p.steps, device="gpu").label.endswith("@gpu")
    with pytest.raises(SystemExit, match="name=value"):
        parse_filters("blur:radius")
    with pytest.raises(SystemExit, match="at least one"):
        parse_filters(" , ")


def test_distributed_plan_reaches_every_class_first():
    registry = pytest.importorskip("filters.registry")
    from stress.distributed_stress import plan_pipelines

    filters = registry.describe()
    plans = plan_pipelines(filters, None, with_gpu=False)
    classes = sorted({f["capability"] for f in filters})
    first = plans[: len(classes) + 1]        # each class alone, then their combination
    covered = {frozenset(registry.FILTERS[s["filter"]].capability for s in p.steps) for p in first}
    assert covered == {frozenset([c]) for c in classes} | {frozenset(classes)}
    assert {s["filter"] for p in plans for s in p.steps} == set(registry.FILTERS)
    for p in plans:    # every planned step is valid as sent
        registry.validate_steps(p.as_json())
    gpu = plan_pipelines(filters, {"blur"}, with_gpu=True)
    assert [p.label for p in gpu] == ["blur", "blur@gpu"]


def test_open_loop_keeps_its_timetable_when_responses_are_slow():
    """10 sends at 20/s, each taking 0.5 s: sends still leave on schedule (not 0.5 s apart)."""
    import threading
    import time

    from stress.continuous_stress import open_loop

    lock, sent = threading.Lock(), []

    def slow_send(i: int, due: float) -> tuple[int, float, float]:
        with lock:
            sent.append(time.time())
        time.sleep(0.5)
        return i, due, sent[-1]

    started = time.monotonic()
    results = open_loop(10, rate=20, concurrency=16, send=slow_send)
    elapsed = time.monotonic() - started
    assert [r[0] for r in results] == list(range(10))
    dues = [r[1] for r in results]
    assert all(b - a == pytest.approx(0.05, abs=1e-4) for a, b in zip(dues, dues[1:]))
    # closed loop would need 10 × 0.5 s; open loop needs the 0.45 s timetable + one response
    assert elapsed < 2.5
    assert max(sent) - min(sent) < 1.5
