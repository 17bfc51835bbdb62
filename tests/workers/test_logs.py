"""workers.logs: one line per event, ISO-8601 UTC with Z, key=value, RQ's lines included."""
from __future__ import annotations

import io
import logging
import re

import pytest

from workers import logs

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|ERROR|DEBUG) ")


@pytest.fixture
def captured():
    stream = io.StringIO()
    root = logging.getLogger()
    before_handlers, before_level = list(root.handlers), root.level
    logs.configure_logging("test", stream=stream)
    yield stream
    for handler in list(root.handlers):
        if handler not in before_handlers:
            root.removeHandler(handler)
    root.setLevel(before_level)
    logs.set_context(worker=None, task=None)


def lines(stream) -> list[str]:
    return stream.getvalue().splitlines()


def test_event_line_has_time_level_and_fields(captured):
    log = logs.get_logger("workers.test")
    logs.log_event(log, "taken", worker="worker-1", task="abc", queue="pixelfleet:io", ms=1.5)
    [line] = lines(captured)
    assert LINE.match(line)
    assert line.endswith(" INFO worker=worker-1 task=abc event=taken queue=pixelfleet:io ms=1.5")


def test_context_names_worker_and_task_and_rq_lines_use_the_format(captured):
    logs.set_context(worker="worker-2")
    with logs.log_context(task="t-9"):
        logging.getLogger("rq.worker").info("Worker %s: started", "worker-2")
    logs.log_event(logs.get_logger("workers.test"), "idle")
    first, second = lines(captured)
    assert LINE.match(first) and "worker=worker-2 task=t-9 logger=rq.worker msg=\"Worker worker-2: started\"" in first
    assert "task=" not in second and "worker=worker-2 event=idle" in second


def test_values_with_spaces_and_tracebacks_stay_on_one_line(captured):
    log = logs.get_logger("workers.test")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logs.log_event(log, "oops", logging.ERROR, reason="two words", exc_info=True)
    [line] = lines(captured)
    assert 'reason="two words"' in line and 'exc="ValueError: bad\\nthing"' in line
    assert "traceback=\"Traceback" in line


def test_without_worker_the_component_is_named_and_configure_is_idempotent(captured):
    logs.configure_logging("api", stream=captured)
    logs.log_event(logs.get_logger("webapp.x"), "request", path="/api/tasks/")
    assert len(lines(captured)) == 1
    assert "component=api event=request path=/api/tasks/" in lines(captured)[0]


def test_disabled_levels_cost_nothing(captured):
    logs.log_event(logs.get_logger("workers.test"), "noise", logging.DEBUG)
    assert lines(captured) == []
