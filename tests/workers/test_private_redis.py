"""A private Redis by default: the embedded server's password, and URLs that never show it."""
from __future__ import annotations

import stat
import subprocess

import pytest
import redis

from workers import settings
from workers.embedded_redis import RedisServer, load_or_create_password


def test_password_is_made_once_kept_0600_and_reused(tmp_path):
    first = load_or_create_password(tmp_path)
    path = tmp_path / settings.REDIS_PASSWORD_FILE
    assert len(first) >= 32 and settings.is_url_safe(first)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    assert load_or_create_password(tmp_path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("two words\n")
    with pytest.raises(RuntimeError, match="URL-safe"):
        load_or_create_password(tmp_path)


def test_a_server_with_a_password_refuses_other_clients_and_hides_it_from_ps(tmp_path):
    secret = load_or_create_password(tmp_path)
    with RedisServer(data_dir=tmp_path, password=secret) as server:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=server.port).ping()
        assert redis.Redis.from_url(server.url).ping()
        assert secret not in server.display_url and "***" in server.display_url
        cmdline = subprocess.run(["ps", "-o", "args=", "-p", str(server.process.pid)],
                                 capture_output=True, text=True).stdout
        assert cmdline and secret not in cmdline
    with pytest.raises(ValueError):
        RedisServer(password="x\nrename-command CONFIG ''")


def test_redis_url_defaults_to_the_local_fleet_with_its_password(tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("PIXELFLEET_REDIS_DIR", str(tmp_path))
    assert settings.redis_url() == settings.DEFAULT_REDIS_URL
    secret = load_or_create_password(tmp_path)
    assert settings.redis_url() == f"redis://:{secret}@127.0.0.1:6379/0"
    monkeypatch.setenv("REDIS_URL", "rediss://:other@host:6380/0")
    assert settings.redis_url() == "rediss://:other@host:6380/0"


@pytest.mark.parametrize("url, shown", [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
    ("redis://fleet:s3cret@host:6379/0", "redis://fleet:***@host:6379/0"),
    ("rediss://:s3cret@host:6380/0?ssl_cert_reqs=required", "rediss://:***@host:6380/0?ssl_cert_reqs=required"),
    ("redis://host:6379/0?password=s3cret&db=1", "redis://host:6379/0?password=***&db=1"),
    ("unix:///run/redis.sock?password=s3cret", "unix:///run/redis.sock?password=***"),
])
def test_redacted_url_masks_every_form_of_secret(url, shown):
    assert settings.redacted_url(url) == shown
