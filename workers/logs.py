"""One log line per event, for every Pixelfleet process, RQ's own logger included.

Why one format: operators grep the logs of the API, the workers and the stress tools
side by side, so every line starts with an ISO-8601 UTC time and carries the same
key=value fields (``worker=``, ``task=``, ``event=``)::

    2026-11-23T19:04:05.123Z INFO worker=worker-1 task=3f2a… event=taken queue=pixelfleet:io

Usage::

    from workers.logs import configure_logging, get_logger, log_event, log_context
    configure_logging("worker")                 # once per process, at start
    set_context(worker="worker-1")              # who is speaking (kept for the process)
    log = get_logger(__name__)
    with log_context(task=job.id):              # everything logged inside names the task
        log_event(log, "taken", queue="pixelfleet:io")
    log.info("plain text works too", extra={"event": "note", "fields": {"n": 3}})

RQ's loggers ("rq.worker", "rq.job", …) propagate to the root handler installed here;
RQ only installs its own handler when none exists, so after ``configure_logging`` its
lines come out in this format as well.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import math
import sys
from datetime import datetime, timezone
from typing import Any, Iterator, TextIO

# Who is speaking and about which task: set once per worker, per task while it runs.
_CONTEXT: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "pixelfleet_log_context", default={}
)
_COMPONENT = "pixelfleet"
_HANDLER_MARK = "_pixelfleet_handler"

# LogRecord attributes that are not user fields.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "event", "fields", "worker", "task",
    "color_message",   # uvicorn's ANSI-coloured copy of msg
}


_second_prefix: tuple[int, str] = (-1, "")   # the last whole second formatted, and its text


def utc_timestamp(epoch: float) -> str:
    """ISO-8601 UTC with milliseconds and a Z, e.g. 2026-11-23T19:04:05.123Z.

    Every log line has one, and a status poll's access line made strftime a visible part
    of its cost: the text up to the second is formatted once per second and reused.
    """
    global _second_prefix
    second = math.floor(epoch)
    cached_second, prefix = _second_prefix
    if second != cached_second:
        prefix = datetime.fromtimestamp(second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
        _second_prefix = (second, prefix)
    return f"{prefix}{min(999, int((epoch - second) * 1000)):03d}Z"


def format_value(value: Any) -> str:
    """A value safe to put after `key=`: bare when simple, JSON-quoted otherwise.

    Quoting keeps one event on one line: newlines inside a value become ``\\n``.
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value == value else "nan"
    if isinstance(value, (list, tuple, set, frozenset)):
        value = ",".join(str(item) for item in (sorted(value) if isinstance(value, (set, frozenset)) else value))
    text = str(value)
    if text and not any(ch in text for ch in ' ="\'\n\r\t\\'):
        return text
    return json.dumps(text, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    """Formats a record as `TIME LEVEL worker=… task=… event=… k=v … msg="…"`."""

    def format(self, record: logging.LogRecord) -> str:
        context = _CONTEXT.get()
        parts = [utc_timestamp(record.created), record.levelname]
        worker = getattr(record, "worker", None) or context.get("worker")
        parts.append(f"worker={format_value(worker)}" if worker else f"component={format_value(_COMPONENT)}")
        task = getattr(record, "task", None) or context.get("task")
        if task:
            parts.append(f"task={format_value(task)}")
        event = getattr(record, "event", None)
        if event:
            parts.append(f"event={format_value(event)}")
        fields: dict[str, Any] = dict(getattr(record, "fields", None) or {})
        # Anything else passed through `extra=` is a field too.
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                fields.setdefault(key, value)
        for key, value in fields.items():
            parts.append(f"{key}={format_value(value)}")
        if not record.name.startswith(("pixelfleet", "workers", "webapp", "filters", "stress", "simple_monitoring")):
            parts.append(f"logger={format_value(record.name)}")
        message = record.getMessage()
        if message and message != event:
            parts.append(f"msg={format_value(message)}")
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, _ = record.exc_info
            parts.append(f"exc={format_value(f'{exc_type.__name__}: {exc}')}")
            parts.append(f"traceback={format_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


def configure_logging(component: str, level: int | str = logging.INFO, stream: TextIO | None = None) -> None:
    """Install the one-line formatter on the root logger (idempotent).

    `component` names the process in lines that carry no worker name (``api``,
    ``stress``, ``fleet``…). Calling it again replaces our handler, never duplicates it.
    """
    global _COMPONENT
    _COMPONENT = component
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else str(level).upper())
    # RQ stops propagation only when it installs its own handlers; make sure its
    # loggers reach ours even if a library configured them first.
    for name in ("rq.worker", "rq.job", "rq.queue", "rq.scheduler"):
        rq_logger = logging.getLogger(name)
        for existing in list(rq_logger.handlers):
            rq_logger.removeHandler(existing)
        rq_logger.propagate = True
        rq_logger.setLevel(logging.NOTSET)   # the root level decides, until RQ's work() sets one


def get_logger(name: str) -> logging.Logger:
    """The standard logger for `name`; formatting comes from `configure_logging`."""
    return logging.getLogger(name)


def set_context(**fields: Any) -> None:
    """Set process-wide fields (e.g. ``worker=``) for every following line."""
    merged = dict(_CONTEXT.get())
    merged.update({k: v for k, v in fields.items() if v is not None})
    for key, value in fields.items():
        if value is None:
            merged.pop(key, None)
    _CONTEXT.set(merged)


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields (e.g. ``task=``) to every line logged inside the block."""
    merged = dict(_CONTEXT.get())
    merged.update(fields)
    token = _CONTEXT.set(merged)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO,
              message: str = "", exc_info: Any = None, **fields: Any) -> None:
    """Log one event with key=value fields; ``worker``/``task`` may be passed as fields."""
    if not logger.isEnabledFor(level):
        return
    extra: dict[str, Any] = {"event": event}
    for key in ("worker", "task"):
        if key in fields:
            extra[key] = fields.pop(key)
    extra["fields"] = fields
    logger.log(level, message or event, extra=extra, exc_info=exc_info)
