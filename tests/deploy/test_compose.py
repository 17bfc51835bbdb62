"""Static checks of docker-compose.yml and the images: no Docker engine runs here, so we
check that everything they name exists in the project and is read by the code."""
from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from workers import settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILES = [ROOT / "deploy" / "Dockerfile", ROOT / "deploy" / "Dockerfile.cuda"]
# Variables consumed by third-party programs, not by our code.
NOT_OURS = {"REDIS_PASSWORD", "REDIS_ADMIN_PASSWORD", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES",
            "PATH", "PYTHONUNBUFFERED", "PYTHONPATH", "PIP_NO_CACHE_DIR",
            "PIP_DISABLE_PIP_VERSION_CHECK", "NUMBA_CACHE_DIR", "PIXELFLEET_API_PORT"}


def python_sources() -> str:
    """All of the project's own Python source, to look up which variables it reads."""
    dirs = ["filters", "workers", "webapp", "simple_monitoring", "stress"]
    return "\n".join(p.read_text() for d in dirs for p in (ROOT / d).rglob("*.py"))


def as_argv(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else shlex.split(value)


def assert_module_runs(module: str) -> None:
    """`python -m module` would start: the module (or its package __main__) exists."""
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"python -m {module}: no such module"
    if spec.submodule_search_locations:  # a package needs __main__
        assert importlib.util.find_spec(f"{module}.__main__"), f"{module} has no __main__"


def assert_entry_point(argv: list[str]) -> None:
    assert argv, "empty command"
    if argv[:2] == ["python", "-m"]:
        assert_module_runs(argv[2])
    elif argv[0] == "gunicorn":
        chdir = argv[argv.index("--chdir") + 1].replace("/app", str(ROOT))
        conf = argv[argv.index("-c") + 1].replace("/app", str(ROOT))
        assert Path(conf).is_file(), f"gunicorn config {conf} missing"
        text = Path(conf).read_text()
        match = re.search(r"wsgi_app\s*=\s*['\"]([\w.]+):(\w+)['\"]", text)
        assert match, "gunicorn.conf.py must name wsgi_app"
        module_file = Path(chdir, *match.group(1).split(".")).with_suffix(".py")
        assert module_file.is_file(), f"{module_file} missing"
        assert match.group(2) in module_file.read_text()
    else:
        pytest.fail(f"unknown entry point {argv}")


def test_compose_has_the_fleet_of_the_original_system():
    assert {"redis", "api", "worker-1", "worker-2", "worker-3", "worker-gpu"} <= set(SERVICES)
    caps = {n: SERVICES[n]["environment"]["WORKER_CAPABILITIES"] for n in SERVICES if n.startswith("worker")}
    assert caps == {"worker-1": "io", "worker-2": "cpu", "worker-3": "all", "worker-gpu": "all"}
    assert SERVICES["worker-gpu"]["profiles"] == ["gpu"]
    device = SERVICES["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def test_redis_is_durable_and_checked():
    redis = SERVICES["redis"]
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    policy = redis["command"][redis["command"].index("--maxmemory-policy") + 1]
    assert policy == "noeviction" and "--maxmemory" in redis["command"]   # a queue key is never evicted
    assert any(v.endswith(":/data") for v in redis["volumes"])
    assert "healthcheck" in redis


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_restarts_and_names_a_real_entry_point(name):
    service = SERVICES[name]
    assert service.get("restart") in {"unless-stopped", "always", "on-failure"}
    if name == "redis":
        return
    argv = as_argv(service.get("entrypoint")) + as_argv(service.get("command"))
    if not argv:  # the image's ENTRYPOINT
        dockerfile = ROOT / service["build"]["dockerfile"]
        argv = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile.read_text(), re.M).group(1))
    assert_entry_point(argv)


def test_workers_get_time_to_finish_their_task():
    for name, service in SERVICES.items():
        if name.startswith("worker"):
            grace = int(service["stop_grace_period"].rstrip("s"))
            assert grace > settings.TASK_TIMEOUT, f"{name}: grace {grace}s < task limit"


def test_worker_capabilities_are_valid():
    from workers.routing import parse_capabilities

    for name, service in SERVICES.items():
        if name.startswith("worker"):
            caps = parse_capabilities(service["environment"]["WORKER_CAPABILITIES"])
            assert caps and caps <= set(settings.CAPABILITIES), name


def test_every_variable_set_is_read_by_the_code():
    source = python_sources()
    env_example = [line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#")]
    names = set(env_example)
    for name, service in SERVICES.items():
        if name != "redis":
            names |= set(service.get("environment", {}))
    for dockerfile in DOCKERFILES:
        names |= set(re.findall(r"^\s+([A-Z][A-Z0-9_]+)=", dockerfile.read_text(), re.M))
    unread = sorted(n for n in names - NOT_OURS if f'"{n}"' not in source and f"'{n}'" not in source)
    assert not unread, f"set but never read by the code: {unread}"


def test_secrets_come_from_the_env_file():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "DJANGO_SECRET_KEY" not in text and "PIXELFLEET_API_TOKENS" not in text
    for name in ("api", "worker-1"):
        assert SERVICES[name]["env_file"] == ".env"


def test_api_healthcheck_url_exists_in_the_url_map():
    import django
    from django.urls import resolve

    django.setup()
    test = SERVICES["api"]["healthcheck"]["test"]
    url = re.search(r"http://[^/]+(/[^'\"?]*)", " ".join(test)).group(1)
    resolve(url)  # raises Resolver404 when the API has no such route


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_are_multistage_non_root_exec_form_and_checked(dockerfile):
    text = dockerfile.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2, "multi-stage build"
    assert re.search(r"^USER (?!root)\w+", text, re.M), "runs as a non-root user"
    entry = re.search(r"^ENTRYPOINT (.*)$", text, re.M).group(1)
    assert json.loads(entry), "exec-form ENTRYPOINT so signals reach the worker"
    assert "HEALTHCHECK" in text
    for src in re.findall(r"^COPY (?:--\S+ )*(\S+) \S+$", text, re.M):
        if not src.startswith("/"):
            assert (ROOT / src).exists(), f"{dockerfile.name} copies missing {src}"
    for module in re.findall(r"python -m ([\w.]+)", text) + re.findall(r'"-m", "([\w.]+)"', text):
        assert_module_runs(module)
