"""The interface every image store implements: inputs by digest, outputs by task id.

Why so small: reference counting, budgets and backpressure live in Redis and in
workers.storage, the same for every backend; a backend only moves bytes and keeps an
expiry per blob. Arguments are already checked (a digest is 64 hex characters, a task
id matches RQ's id alphabet), so a backend may use them as file or object names.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import redis


class BlobStore(ABC):
    """Bytes of input and output images, each with an expiry (a safety net, see storage)."""

    name: ClassVar[str]
    # True when the blobs live in the fleet's Redis itself: storage then counts a
    # reference and frees the blob in one Lua script, with no deletion lock.
    in_redis: ClassVar[bool] = False

    @abstractmethod
    def put_input(self, conn: redis.Redis, digest: str, data: bytes, ttl: int) -> bool:
        """Store `data` under `digest` unless present, and (re)start its expiry; True if written."""

    @abstractmethod
    def touch_input(self, conn: redis.Redis, digest: str, ttl: int) -> bool:
        """Restart an input's expiry; False when it is not there."""

    def shorten_input(self, conn: redis.Redis, digest: str, ttl: int) -> None:
        """Let an input expire within `ttl` s (kept for a retry, no longer needed by a task).
        Stores with native expiry need not; the file store moves the file's expiry."""

    @abstractmethod
    def get_input(self, conn: redis.Redis, digest: str) -> bytes | None:
        """The input's bytes, or None when absent or expired."""

    @abstractmethod
    def delete_input(self, conn: redis.Redis, digest: str) -> None:
        """Remove an input (absent is fine)."""

    @abstractmethod
    def put_output(self, conn: redis.Redis, task_id: str, data: bytes, content_type: str, fmt: str,
                   ttl: int, pipeline: Any = None) -> None:
        """Store (replace) a task's result; with `pipeline`, Redis writes join the caller's round trip."""

    @abstractmethod
    def get_output(self, conn: redis.Redis, task_id: str) -> tuple[bytes, str] | None:
        """(bytes, content_type) of a result, or None when absent, expired or deleted."""

    @abstractmethod
    def shorten_output(self, conn: redis.Redis, task_id: str, ttl: int) -> None:
        """Let a result expire within `ttl` s (never later than it would have)."""

    @abstractmethod
    def delete_output(self, conn: redis.Redis, task_id: str) -> bool:
        """Remove a result; True when there was one."""

    def used_bytes(self, conn: redis.Redis) -> int | None:
        """Bytes of images this store holds outside Redis; None when they are in Redis
        (then Redis's own used_memory is what the budget measures)."""
        return None

    def sweep(self, conn: redis.Redis, held: Any = None) -> int:
        """Delete expired blobs (a store without native expiry), except inputs for which
        `held(digest)` is true; returns how many were deleted."""
        return 0

    def describe(self) -> dict[str, Any]:
        """What /api/metrics/ shows about the store."""
        return {"backend": self.name}
