"""workers.storage against the real redis-server: stored once, TTLs, clear errors."""
from __future__ import annotations

from blake3 import blake3

import pytest

from workers import settings, storage


def test_same_image_submitted_1000_times_is_stored_once(redis_conn):
    data = b"\x89PNG fake but bytes are bytes" * 10
    digests = {storage.store_input(redis_conn, data) for _ in range(1000)}
    assert digests == {blake3(data).hexdigest()}
    keys = list(redis_conn.scan_iter(match=settings.INPUT_KEY.format(digest="*")))
    assert len(keys) == 1
    assert redis_conn.get(keys[0]) == data
    assert 0 < redis_conn.ttl(keys[0]) <= settings.INPUT_TTL


def test_storing_again_refreshes_the_ttl(redis_conn):
    digest = storage.store_input(redis_conn, b"abc")
    key = storage.input_key(digest)
    redis_conn.expire(key, 5)
    assert redis_conn.ttl(key) <= 5
    assert storage.store_input(redis_conn, b"abc") == digest
    assert redis_conn.ttl(key) > settings.INPUT_TTL - 10


def test_touch_input_reports_presence(redis_conn):
    digest = storage.store_input(redis_conn, b"xyz")
    assert storage.touch_input(redis_conn, digest) is True
    redis_conn.delete(storage.input_key(digest))
    assert storage.touch_input(redis_conn, digest) is False


def test_load_input_of_expired_image_says_so(redis_conn):
    digest = blake3(b"never stored").hexdigest()
    with pytest.raises(storage.InputMissing) as info:
        storage.load_input(redis_conn, digest)
    assert "expired" in info.value.message and info.value.code == "input_missing"
    assert info.value.http_status == 404


@pytest.mark.parametrize("bad", ["", "abc", "G" * 64, "A" * 64, None, 42])
def test_malformed_digest_is_refused(redis_conn, bad):
    with pytest.raises(storage.InvalidDigest) as info:
        storage.load_input(redis_conn, bad)
    assert "BLAKE3" in info.value.message and info.value.http_status == 400


def test_empty_input_is_refused(redis_conn):
    with pytest.raises(storage.StorageError, match="empty"):
        storage.store_input(redis_conn, b"")
    assert redis_conn.dbsize() == 0


@pytest.mark.parametrize("fmt,ctype", [("png", "image/png"), ("jpeg", "image/jpeg"), ("webp", "image/webp")])
def test_output_round_trip_keeps_content_type_and_ttl(redis_conn, fmt, ctype):
    assert storage.store_output(redis_conn, "task-1", b"payload", fmt) == ctype
    assert storage.load_output(redis_conn, "task-1") == (b"payload", ctype)
    assert 0 < redis_conn.ttl(storage.output_key("task-1")) <= settings.OUTPUT_TTL


def test_output_is_replaced_not_merged(redis_conn):
    storage.store_output(redis_conn, "t", b"first", "png")
    storage.store_output(redis_conn, "t", b"second", "jpeg")
    assert storage.load_output(redis_conn, "t") == (b"second", "image/jpeg")


def test_absent_output_is_none(redis_conn):
    assert storage.load_output(redis_conn, "no-such-task") is None


def test_unknown_output_format_is_refused(redis_conn):
    with pytest.raises(storage.StorageError, match="unknown output format"):
        storage.store_output(redis_conn, "t", b"x", "gif")
    assert redis_conn.dbsize() == 0
