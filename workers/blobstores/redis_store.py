"""Images in the fleet's own Redis: inputs as strings, outputs as hashes, with native TTLs.

The default: nothing to mount or run, and workers on other hosts need only REDIS_URL.
Its cost is Redis memory, which the budget (workers.storage_budget) bounds.
"""
from __future__ import annotations

from typing import Any

import redis

from workers import settings
from workers.blobstores.base import BlobStore


def input_key(digest: str) -> str:
    return settings.INPUT_KEY.format(digest=digest)


def output_key(task_id: str) -> str:
    return settings.OUTPUT_KEY.format(task_id=task_id)


# EXPIRE … LT needs Redis 7; the fleet runs on 6.2 too. KEYS: the output. ARGV: ttl.
_SHORTEN = """
if redis.call('TTL', KEYS[1]) > tonumber(ARGV[1]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return 1
"""


class RedisBlobStore(BlobStore):
    name = "redis"
    in_redis = True

    def put_input(self, conn: redis.Redis, digest: str, data: bytes, ttl: int) -> bool:
        with conn.pipeline(transaction=False) as pipe:
            pipe.set(input_key(digest), data, nx=True, ex=ttl)
            pipe.expire(input_key(digest), ttl)
            created, _ = pipe.execute()
        return bool(created)

    def touch_input(self, conn: redis.Redis, digest: str, ttl: int) -> bool:
        return bool(conn.expire(input_key(digest), ttl))

    def get_input(self, conn: redis.Redis, digest: str) -> bytes | None:
        return conn.get(input_key(digest))

    def delete_input(self, conn: redis.Redis, digest: str) -> None:
        conn.delete(input_key(digest))

    def put_output(self, conn: redis.Redis, task_id: str, data: bytes, content_type: str, fmt: str,
                   ttl: int, pipeline: Any = None) -> None:
        key = output_key(task_id)
        pipe = pipeline if pipeline is not None else conn.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, mapping={"data": data, "content_type": content_type, "format": fmt})
        pipe.expire(key, ttl)
        if pipeline is None:
            pipe.execute()

    def get_output(self, conn: redis.Redis, task_id: str) -> tuple[bytes, str] | None:
        return self.output_from_read(conn.hmget(output_key(task_id), ["data", "content_type"]))

    @staticmethod
    def queue_output_read(pipe: Any, task_id: str) -> None:
        """Add the result's read to `pipe` (sync or asyncio): joins another read's round trip."""
        pipe.hmget(output_key(task_id), ["data", "content_type"])

    @staticmethod
    def output_from_read(reply: list[Any]) -> tuple[bytes, str] | None:
        data, content_type = reply
        if data is None:
            return None
        return data, (content_type or b"application/octet-stream").decode("ascii", "replace")

    async def aget_output_shortened(self, aconn: Any, task_id: str, ttl: int) -> tuple[bytes, str] | None:
        """get_output, then shorten_output to `ttl`, from an event loop in one round trip
        (a submit that waited hands the result out at once: no thread, no second trip)."""
        key = output_key(task_id)
        async with aconn.pipeline(transaction=False) as pipe:
            self.queue_output_read(pipe, task_id)
            pipe.eval(_SHORTEN, 1, key, ttl)
            reply, _ = await pipe.execute()
        return self.output_from_read(reply)

    def shorten_output(self, conn: redis.Redis, task_id: str, ttl: int) -> None:
        conn.eval(_SHORTEN, 1, output_key(task_id), ttl)

    def delete_output(self, conn: redis.Redis, task_id: str) -> bool:
        return bool(conn.delete(output_key(task_id)))

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "location": "the fleet's Redis (REDIS_URL)"}
