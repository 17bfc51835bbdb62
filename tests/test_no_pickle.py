"""Static check: no module on the data path imports pickle or builds RQ objects that would
fall back to RQ's default (pickle) serializer.

Why static as well as the planted-pickle tests: those prove today's readers are safe;
this stops tomorrow's `Queue(name, connection=conn)` (pickle by default) from landing.
Every queue, fetch and registry goes through workers.jobs, which passes the serializer.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA_PATH = ("workers", "webapp", "simple_monitoring", "stress", "filters")
PICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "jsonpickle", "marshal"}
PICKLE_SERIALIZERS = {"DefaultSerializer", "PickleSerializer"}
# RQ constructors and fetchers that read jobs: each call must say serializer=…
NEEDS_SERIALIZER = {"Queue", "Job", "fetch", "fetch_many", "SimpleWorker", "Worker", "SpawnWorker",
                    "Result.restore", "Result.fetch", "Result.fetch_latest", "Result.all",
                    "StartedJobRegistry", "FailedJobRegistry", "FinishedJobRegistry", "CanceledJobRegistry",
                    "DeferredJobRegistry", "ScheduledJobRegistry", "cancel_job", "requeue_job"}


def data_path_modules() -> list[Path]:
    files = [p for top in DATA_PATH for p in (ROOT / top).rglob("*.py")]
    return sorted(p for p in files if ".venv" not in p.parts and "node_modules" not in p.parts)


def _name(func: ast.expr) -> str | None:
    """`Queue`, `fetch` (of Job.fetch), or `Result.restore` for RQ's Result class methods."""
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        if isinstance(func.value, ast.Name) and func.value.id == "Result":
            return f"Result.{func.attr}"
        return func.attr
    return None


def offences(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(root)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"{where}:{node.lineno} imports {a.name}" for a in node.names
                      if a.name.split(".")[0] in PICKLING_MODULES]
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in PICKLING_MODULES:
                found.append(f"{where}:{node.lineno} imports from {node.module}")
            found += [f"{where}:{node.lineno} imports {a.name}" for a in node.names if a.name in PICKLE_SERIALIZERS]
        elif isinstance(node, ast.Attribute) and node.attr in PICKLE_SERIALIZERS:
            found.append(f"{where}:{node.lineno} uses {node.attr}")
        elif isinstance(node, ast.Call) and _name(node.func) in NEEDS_SERIALIZER:
            keywords = {k.arg for k in node.keywords}
            if "serializer" not in keywords and None not in keywords:   # None: **kwargs passed on
                found.append(f"{where}:{node.lineno} calls {_name(node.func)}(…) without serializer= "
                             "(use workers.jobs.queue / fetch_job / fetch_jobs / registry)")
        elif isinstance(node, ast.Constant) and node.value == "pickle":
            found.append(f"{where}:{node.lineno} names the 'pickle' serializer")
    return found


def test_the_scan_covers_the_data_path():
    names = {p.relative_to(ROOT).as_posix() for p in data_path_modules()}
    assert {"workers/jobs.py", "workers/worker.py", "workers/status.py", "workers/reaper.py",
            "webapp/api/views_tasks.py", "simple_monitoring/collect.py"} <= names


@pytest.mark.parametrize("bad", ["import pickle", "from rq.serializers import DefaultSerializer",
                                 "Queue('pixelfleet:io', connection=conn)", "Job.fetch(i, connection=c)",
                                 "Job(task_id, connection=conn)", "Result.restore(i, r, p, connection=c)"])
def test_the_scan_catches_what_it_forbids(tmp_path, bad):
    module = tmp_path / "probe.py"
    module.write_text(bad + "\n")
    assert offences(module, tmp_path)


def test_no_data_path_module_unpickles_or_uses_rqs_default_serializer():
    found = [o for path in data_path_modules() for o in offences(path)]
    assert found == [], "\n".join(found)
