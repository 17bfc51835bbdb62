"""Who may see and do what on the dashboard, through Django's test client on the real Redis.

No browser needed for these rules (the browser tests show the refusals on the pages):
with PIXELFLEET_READ_REQUIRES_TOKEN the pages send a stranger to the sign-in page and
the data endpoints answer 401; the session is kept in Redis and holds no token; removing
a token from the environment signs its sessions out; actions are CSRF-checked and logged.
"""
from __future__ import annotations

import json
import logging

import pytest

from tests.api.conftest import API_ENV  # noqa: F401 — also sets Django up
from django.test import Client  # noqa: E402

TOKEN = "tok-access-test"
PAGES = ["/dashboard/", "/dashboard/queues/", "/dashboard/tasks/", "/dashboard/playground/",
         "/dashboard/tasks/abc123/"]


@pytest.fixture
def env(redis_conn, monkeypatch):
    for name in API_ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def signed_in_client(csrf_checks: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf_checks)
    client.get("/dashboard/login/")
    answer = client.post("/dashboard/login/", {"token": TOKEN, "next": "/dashboard/queues/",
                                               "csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert answer.status_code == 302 and answer["Location"] == "/dashboard/queues/"
    return client


def test_open_api_means_an_open_dashboard(env):
    client = Client()
    for page in PAGES:
        answer = client.get(page)
        assert answer.status_code == 200, page
        assert b"open API" in answer.content
    assert client.get("/dashboard/api/metrics/").status_code == 200
    assert client.get("/api/").json()["dashboard"] == "/dashboard/"
    assert client.get("/dashboard/login/?next=/dashboard/tasks/")["Location"] == "/dashboard/tasks/"


@pytest.mark.parametrize("page", PAGES)
def test_reads_requiring_a_token_send_strangers_to_sign_in(env, page):
    env.setenv("PIXELFLEET_API_TOKENS", TOKEN)
    env.setenv("PIXELFLEET_READ_REQUIRES_TOKEN", "1")
    answer = Client().get(page)
    assert answer.status_code == 302 and answer["Location"].startswith("/dashboard/login/?next=")


def test_sign_in_once_then_pages_and_data_answer(env, redis_conn):
    env.setenv("PIXELFLEET_API_TOKENS", f"other,{TOKEN}")
    env.setenv("PIXELFLEET_READ_REQUIRES_TOKEN", "1")
    assert Client().get("/dashboard/api/queues/").status_code == 401
    client = signed_in_client()
    for page in PAGES:
        assert client.get(page).status_code == 200, page
    assert client.get("/dashboard/api/queues/").status_code == 200
    # The session lives in Redis and keeps a digest, never the token itself.
    keys = redis_conn.keys("pixelfleet:dashboard:session:*")
    assert len(keys) == 1
    stored = redis_conn.get(keys[0]).decode()
    assert TOKEN not in stored and json.loads(stored)["pixelfleet_token_sha256"]
    # Taking the token out of the environment signs its sessions out.
    env.setenv("PIXELFLEET_API_TOKENS", "other")
    assert client.get("/dashboard/api/queues/").status_code == 401
    assert client.get("/dashboard/").status_code == 302


def test_a_wrong_token_and_a_foreign_next_are_refused(env):
    env.setenv("PIXELFLEET_API_TOKENS", TOKEN)
    client = Client()
    answer = client.post("/dashboard/login/", {"token": "nope"})
    assert answer.status_code == 403 and b"not one of the API" in answer.content
    answer = client.post("/dashboard/login/", {"token": TOKEN, "next": "https://evil.example/"})
    assert answer["Location"] == "/dashboard/"
    answer = Client().post("/dashboard/login/", {"token": TOKEN, "next": "//evil.example/x"})
    assert answer["Location"] == "/dashboard/"


def test_actions_need_csrf_and_a_session_and_are_logged(env, redis_conn, caplog):
    env.setenv("PIXELFLEET_API_TOKENS", TOKEN)
    stranger = Client(enforce_csrf_checks=True)
    stranger.get("/dashboard/")
    no_csrf = stranger.post("/dashboard/api/queues/io/pause/")
    assert no_csrf.status_code == 403 and no_csrf.json()["error"]["code"] == "csrf_failed"
    with_csrf = stranger.post("/dashboard/api/queues/io/pause/", HTTP_X_CSRFTOKEN=stranger.cookies["csrftoken"].value)
    assert with_csrf.status_code == 401 and "Sign in" in with_csrf.json()["error"]["message"]
    assert not redis_conn.smembers("pixelfleet:paused_queues")

    client = signed_in_client(csrf_checks=True)
    assert client.post("/dashboard/api/queues/io/pause/").status_code == 403       # a session is not enough
    with caplog.at_level(logging.INFO, logger="webapp.dashboard"):
        answer = client.post("/dashboard/api/queues/io/pause/", HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert answer.status_code == 200 and answer.json()["queue"]["paused"] is True
    actions = [r for r in caplog.records if getattr(r, "event", None) == "dashboard_action"]
    assert actions and actions[-1].fields["status"] == 200 and actions[-1].fields["who"].startswith("token:")
    assert TOKEN not in caplog.text
    # Signing out ends the session (in Redis too).
    client.post("/dashboard/logout/", HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert not redis_conn.keys("pixelfleet:dashboard:session:*")


def test_thumbnails_and_bad_sizes(env):
    client = Client()
    answer = client.get("/dashboard/api/samples/small.png?size=64")
    assert answer.status_code == 200 and answer["Content-Type"] == "image/png"
    assert client.get("/dashboard/api/samples/small.png?size=5").json()["error"]["details"]["field"] == "size"
    assert client.get("/dashboard/api/samples/nope.png").status_code == 404
    assert client.get("/dashboard/api/tasks/nope/input.png").json()["error"]["code"] == "task_not_found"
