"""Bearer tokens on writes (401 without, 403 wrong), open reads unless configured, throttling."""
from __future__ import annotations

import base64

import pytest

from tests.api.conftest import error_of, png_bytes

BODY = {"image_base64": base64.b64encode(png_bytes(8, 8)).decode(), "filters": ["grayscale"]}


@pytest.fixture
def tokens(monkeypatch):
    monkeypatch.setenv("PIXELFLEET_API_TOKENS", "alpha-token, beta-token")


def test_open_api_without_tokens(api):
    assert api.post("/api/tasks/", BODY, format="json").status_code == 202


def test_submit_needs_a_token(api, tokens):
    missing = api.post("/api/tasks/", BODY, format="json")
    assert missing.status_code == 401
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert error_of(missing)["code"] == "not_authenticated"
    wrong = api.post("/api/tasks/", BODY, format="json", HTTP_AUTHORIZATION="Bearer gamma")
    assert wrong.status_code == 403 and error_of(wrong)["code"] == "forbidden"
    basic = api.post("/api/tasks/", BODY, format="json", HTTP_AUTHORIZATION="Basic YWxwaGE6eA==")
    assert basic.status_code == 401
    good = api.post("/api/tasks/", BODY, format="json", HTTP_AUTHORIZATION="Bearer beta-token")
    assert good.status_code == 202


def test_every_writing_endpoint_is_protected(api, tokens):
    task_id = api.post("/api/tasks/", BODY, format="json", HTTP_AUTHORIZATION="Bearer alpha-token").json()["task_id"]
    assert api.delete(f"/api/tasks/{task_id}/").status_code == 401
    assert api.post(f"/api/tasks/{task_id}/retry/").status_code == 401
    assert api.post("/api/process-batch/distributed/", {"filters": ["blur"]}, format="json").status_code == 401
    # Refused before the body is even looked at: a garbage body still gets 401, not 400.
    assert api.generic("POST", "/api/tasks/", b"{", content_type="application/json").status_code == 401
    assert api.delete(f"/api/tasks/{task_id}/", HTTP_AUTHORIZATION="Bearer alpha-token").status_code == 200


def test_reads_stay_open_unless_configured(api, tokens, monkeypatch):
    assert api.get("/api/tasks/").status_code == 200
    assert api.get("/api/filters/").status_code == 200
    monkeypatch.setenv("PIXELFLEET_READ_REQUIRES_TOKEN", "1")
    assert api.get("/api/tasks/").status_code == 401
    assert api.get("/api/filters/", HTTP_AUTHORIZATION="Bearer alpha-token").status_code == 200


def test_submit_throttle_is_429_with_retry_after(api, monkeypatch):
    monkeypatch.setenv("PIXELFLEET_THROTTLE_SUBMIT", "2/hour")
    statuses = [api.post("/api/tasks/", BODY, format="json").status_code for _ in range(3)]
    assert statuses == [202, 202, 429]
    throttled = api.post("/api/tasks/", BODY, format="json")
    assert throttled.status_code == 429 and error_of(throttled)["code"] == "throttled"
    assert 1 <= int(throttled["Retry-After"]) <= 3601
    assert api.get("/api/tasks/").status_code == 200            # reads are not throttled


def test_throttle_counts_per_token(api, tokens, monkeypatch):
    monkeypatch.setenv("PIXELFLEET_THROTTLE_SUBMIT", "1/day")
    alpha = {"HTTP_AUTHORIZATION": "Bearer alpha-token"}
    beta = {"HTTP_AUTHORIZATION": "Bearer beta-token"}
    assert api.post("/api/tasks/", BODY, format="json", **alpha).status_code == 202
    assert api.post("/api/tasks/", BODY, format="json", **alpha).status_code == 429
    assert api.post("/api/tasks/", BODY, format="json", **beta).status_code == 202


def test_tokens_are_never_logged_nor_stored_in_redis(api, tokens, monkeypatch, redis_conn, caplog):
    import logging

    monkeypatch.setenv("PIXELFLEET_THROTTLE_SUBMIT", "5/min")
    caplog.set_level(logging.DEBUG)
    for header in ("Bearer alpha-token", "Bearer wrong-secret-guess", "Basic alpha-token"):
        api.post("/api/tasks/", BODY, format="json", HTTP_AUTHORIZATION=header)
    text = caplog.text + " ".join(k.decode() for k in redis_conn.scan_iter(count=1000))
    assert "pixelfleet:api:throttle:submit:t-" in text            # counted per token, by a stand-in
    for secret in ("alpha-token", "wrong-secret-guess"):
        assert secret not in text


def test_token_check_compares_every_token_in_constant_time(monkeypatch):
    from unittest import mock

    import api.auth as auth

    monkeypatch.setenv("PIXELFLEET_API_TOKENS", "first-token,second-token,third-token")
    request = mock.Mock(META={"HTTP_AUTHORIZATION": "Bearer first-token"})
    with mock.patch.object(auth.hmac, "compare_digest", wraps=auth.hmac.compare_digest) as compare:
        auth.check_token(request)
    assert compare.call_count == 3                                 # no early exit on the first match
    assert all(len(a) == len(b) == 32 for (a, b), _ in compare.call_args_list)   # digests, not raw tokens


# --- Secret key policy ------------------------------------------------------------------
def _import_settings(env_extra: dict) -> "subprocess.CompletedProcess":
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIXELFLEET_", "DJANGO_SECRET")) and k != "PYTEST_CURRENT_TEST"}
    env.update(PYTHONPATH=os.pathsep.join([str(root), str(root / "webapp")]),
               DJANGO_SETTINGS_MODULE="webapp.settings", **env_extra)
    return subprocess.run([sys.executable, "-c", "import django; django.setup(); print('started')"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=60)


def test_production_refuses_to_start_without_a_secret_key_and_says_what_to_set():
    refused = _import_settings({})
    assert refused.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in refused.stderr and "PIXELFLEET_ENV=development" in refused.stderr
    assert "started" in _import_settings({"DJANGO_SECRET_KEY": "x" * 50}).stdout
    assert "started" in _import_settings({"PIXELFLEET_ENV": "development"}).stdout


def test_gunicorn_treats_loopback_only_as_development(monkeypatch):
    import runpy
    from pathlib import Path
    from types import SimpleNamespace
    conf = runpy.run_path(str(Path(__file__).resolve().parents[2] / "webapp" / "gunicorn.conf.py"))
    assert conf["worker_class"] == "webapp.asgi_worker.PixelfleetUvicornWorker" and conf["preload_app"] is False
    assert conf["wsgi_app"] == "webapp.asgi:application" and conf["workers"] == 2
    for name in ("DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY_FILE", "PIXELFLEET_ENV"):
        monkeypatch.setenv(name, "")          # recorded, so teardown restores the original state
        monkeypatch.delenv(name)
    messages = []
    server = SimpleNamespace(cfg=SimpleNamespace(bind=["0.0.0.0:8000"]), log=SimpleNamespace(info=messages.append))
    conf["on_starting"](server)
    import os
    assert "PIXELFLEET_ENV" not in os.environ                  # reachable from elsewhere: key required
    server.cfg.bind = ["127.0.0.1:8000", "[::1]:8000"]
    conf["on_starting"](server)
    assert os.environ["PIXELFLEET_ENV"] == "development" and messages
