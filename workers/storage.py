"""Image bytes in Redis: inputs content-addressed, outputs per task, both with a TTL.

Why content-addressed: a load test sends the same image a thousand times; keyed by its
sha256 it is stored once and each task only carries the 64-character digest. Why a TTL:
Redis is the only store, and an image nobody asks for again must not stay for ever.
"""
from __future__ import annotations

import hashlib
import re

import redis

from filters.errors import EngineError
from workers import settings

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg", "webp": "image/webp"}


class StorageError(EngineError):
    """A stored image is missing or unusable; the task that needs it cannot run.

    An EngineError, so the API maps it like the engine's refusals and the worker records
    it as a job_failure with this message.
    """

    code = "storage_error"
    http_status = 422


class InputMissing(StorageError):
    """The input image expired (TTL) or was never stored."""

    code = "input_missing"
    http_status = 404


class InvalidDigest(StorageError):
    """Not a sha256 hex digest: nothing could be stored under it."""

    code = "invalid_digest"
    http_status = 400


def digest_of(data: bytes) -> str:
    """The sha256 hex digest that names `data` in Redis."""
    return hashlib.sha256(data).hexdigest()


def check_digest(digest: object) -> str:
    """`digest` if it is a lowercase sha256 hex string, else InvalidDigest naming it."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise InvalidDigest(f"input digest must be 64 lowercase hex characters (sha256), got {digest!r:.80}")
    return digest


def input_key(digest: str) -> str:
    return settings.INPUT_KEY.format(digest=digest)


def output_key(task_id: str) -> str:
    return settings.OUTPUT_KEY.format(task_id=task_id)


def store_input(conn: redis.Redis, data: bytes, ttl: int | None = None) -> str:
    """Store `data` once under its sha256 and (re)start its TTL; returns the digest.

    SET NX writes the bytes only when absent; EXPIRE refreshes the TTL either way, so an
    image that keeps being submitted keeps living. One round trip.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0:
        raise StorageError("input image is empty")
    data = bytes(data)
    digest = digest_of(data)
    key = input_key(digest)
    ttl = ttl or settings.INPUT_TTL
    with conn.pipeline(transaction=False) as pipe:
        pipe.set(key, data, nx=True, ex=ttl)
        pipe.expire(key, ttl)
        pipe.execute()
    return digest


def touch_input(conn: redis.Redis, digest: str, ttl: int | None = None) -> bool:
    """Refresh the TTL of a stored input; False when it is not there (expired or unknown)."""
    return bool(conn.expire(input_key(check_digest(digest)), ttl or settings.INPUT_TTL))


def load_input(conn: redis.Redis, digest: str) -> bytes:
    """The stored input bytes, or InputMissing saying that the image expired or never came."""
    data = conn.get(input_key(check_digest(digest)))
    if data is None:
        raise InputMissing(
            f"input image {digest[:12]}… is not in Redis: it expired (TTL {settings.INPUT_TTL} s) "
            "or was never stored; submit the image again"
        )
    return data


def content_type_for(fmt: str) -> str:
    """The MIME type of an output format (`png` → `image/png`)."""
    try:
        return _CONTENT_TYPES[fmt.lower()]
    except (KeyError, AttributeError):
        raise StorageError(f"unknown output format {fmt!r}; expected one of png, jpeg, webp") from None


def store_output(conn: redis.Redis, task_id: str, data: bytes, fmt: str,
                 ttl: int | None = None, pipeline: redis.client.Pipeline | None = None) -> str:
    """Store a task's encoded result with its content type and TTL; returns the content type.

    Pass `pipeline` to fold the write into the caller's round trip (the task does, together
    with its completion statistics).
    """
    content_type = content_type_for(fmt)
    key = output_key(task_id)
    pipe = pipeline if pipeline is not None else conn.pipeline(transaction=True)
    pipe.delete(key)
    pipe.hset(key, mapping={"data": bytes(data), "content_type": content_type, "format": fmt.lower()})
    pipe.expire(key, ttl or settings.OUTPUT_TTL)
    if pipeline is None:
        pipe.execute()
    return content_type


def load_output(conn: redis.Redis, task_id: str) -> tuple[bytes, str] | None:
    """(bytes, content_type) of a task's result, or None when absent or expired."""
    data, content_type = conn.hmget(output_key(task_id), ["data", "content_type"])
    if data is None:
        return None
    # Served as is by the API: only our own image types, never a type planted in Redis
    # (text/html there would be stored script on the API's origin).
    known = content_type.decode("ascii", "replace") if content_type else ""
    return data, known if known in _CONTENT_TYPES.values() else "application/octet-stream"
