"""Images as files in a directory every host mounts (NFS, a shared volume): Redis keeps
only the queues, the jobs and the reference counts.

Layout: <root>/inputs/<2 hex>/<digest> and <root>/outputs/<task id>. A file's mtime is
set to its expiry time, so "expired" is one stat and a sweep (workers call
workers.storage.housekeeping every PIXELFLEET_STORAGE_SWEEP_S fleet-wide) needs no index. Writes go to a
temporary name and are linked or renamed into place, so a reader on any host sees a
whole file or none. The bytes held are counted in Redis (STORAGE_STATS_KEY file_bytes)
as files come and go, and recounted exactly by each sweep.
"""
from __future__ import annotations

import errno
import os
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from workers import settings
from workers.blobstores.base import BlobStore

_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8", "image/jpeg"), (b"RIFF", "image/webp"))
FILE_BYTES = "file_bytes"


def sniff_content_type(head: bytes) -> str:
    """The MIME type from an encoded image's first bytes (what our encoder writes)."""
    for magic, content_type in _MAGIC:
        if head.startswith(magic):
            return content_type
    return "application/octet-stream"


class FileBlobStore(BlobStore):
    name = "file"

    def __init__(self, root: str) -> None:
        self.root = Path(root)
        self.inputs = self.root / "inputs"
        self.outputs = self.root / "outputs"

    # --- paths and files ----------------------------------------------------------------
    def input_path(self, digest: str) -> Path:
        return self.inputs / digest[:2] / digest

    def output_path(self, task_id: str) -> Path:
        return self.outputs / task_id

    def _temp_for(self, path: Path, data: bytes, expires: float) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        with open(temp, "wb") as handle:
            handle.write(data)
        os.utime(temp, (time.time(), expires))
        return temp

    @staticmethod
    def _live_size(path: Path, now: float) -> int | None:
        """The file's size if it exists and has not expired, else None."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return st.st_size if st.st_mtime > now else None

    def _count(self, conn: redis.Redis, delta: int, pipeline: Any = None) -> None:
        if delta:
            (pipeline if pipeline is not None else conn).hincrby(settings.STORAGE_STATS_KEY, FILE_BYTES, delta)

    def _unlink(self, path: Path) -> int:
        """Remove a file; its size, or 0 when it was not there."""
        try:
            size = path.stat().st_size
            path.unlink()
            return size
        except FileNotFoundError:
            return 0

    # --- inputs -------------------------------------------------------------------------
    def put_input(self, conn: redis.Redis, digest: str, data: bytes, ttl: int) -> bool:
        path = self.input_path(digest)
        expires = time.time() + ttl
        if self.touch_input(conn, digest, ttl):
            return False
        temp = self._temp_for(path, data, expires)
        try:
            self._unlink_expired(conn, path)
            os.link(temp, path)               # fails if another host wrote it first: same bytes
            created = True
        except FileExistsError:
            created = False
            os.utime(path, (time.time(), expires))
        finally:
            temp.unlink(missing_ok=True)
        if created:
            self._count(conn, len(data))
        return created

    def _unlink_expired(self, conn: redis.Redis, path: Path) -> None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return
        if st.st_mtime <= time.time():
            self._count(conn, -self._unlink(path))

    def touch_input(self, conn: redis.Redis, digest: str, ttl: int) -> bool:
        path = self.input_path(digest)
        now = time.time()
        if self._live_size(path, now) is None:
            return False
        try:
            os.utime(path, (now, now + ttl))
        except FileNotFoundError:
            return False
        return True

    def shorten_input(self, conn: redis.Redis, digest: str, ttl: int) -> None:
        self._shorten(self.input_path(digest), ttl)

    def get_input(self, conn: redis.Redis, digest: str) -> bytes | None:
        path = self.input_path(digest)
        if self._live_size(path, time.time()) is None:
            return None
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def delete_input(self, conn: redis.Redis, digest: str) -> None:
        self._count(conn, -self._unlink(self.input_path(digest)))

    # --- outputs ------------------------------------------------------------------------
    def put_output(self, conn: redis.Redis, task_id: str, data: bytes, content_type: str, fmt: str,
                   ttl: int, pipeline: Any = None) -> None:
        path = self.output_path(task_id)
        temp = self._temp_for(path, data, time.time() + ttl)
        try:
            old = path.stat().st_size
        except FileNotFoundError:
            old = 0
        os.replace(temp, path)
        self._count(conn, len(data) - old, pipeline)

    def get_output(self, conn: redis.Redis, task_id: str) -> tuple[bytes, str] | None:
        path = self.output_path(task_id)
        if self._live_size(path, time.time()) is None:
            return None
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return data, sniff_content_type(data[:8])

    def shorten_output(self, conn: redis.Redis, task_id: str, ttl: int) -> None:
        self._shorten(self.output_path(task_id), ttl)

    @staticmethod
    def _shorten(path: Path, ttl: int) -> None:
        """Bring a blob's expiry (its mtime) down to `ttl` s from now; never lengthen it."""
        now = time.time()
        try:
            if path.stat().st_mtime > now + ttl:
                os.utime(path, (now, now + ttl))
        except FileNotFoundError:
            pass

    def delete_output(self, conn: redis.Redis, task_id: str) -> bool:
        path = self.output_path(task_id)
        live = self._live_size(path, time.time()) is not None
        self._count(conn, -self._unlink(path))
        return live

    # --- accounting and expiry --------------------------------------------------------------
    def used_bytes(self, conn: redis.Redis) -> int | None:
        return max(0, int(conn.hget(settings.STORAGE_STATS_KEY, FILE_BYTES) or 0))

    def sweep(self, conn: redis.Redis, held: Any = None) -> int:
        """Delete expired inputs and outputs (and stale temporaries); recount the bytes.

        `held(digest) -> bool` says an input still has a task: its expiry is moved
        forward instead (a reference outlived a shortened expiry)."""
        now = time.time()
        removed = 0
        total = 0
        for folder in (self.inputs, self.outputs):
            if not folder.is_dir():
                continue
            for dirpath, _dirs, files in os.walk(folder):
                for name in files:
                    path = Path(dirpath) / name
                    try:
                        st = path.stat()
                    except FileNotFoundError:
                        continue
                    stale_temp = name.endswith(".tmp") and st.st_ctime < now - 3600
                    expired = st.st_mtime <= now and not name.endswith(".tmp")
                    if expired and folder == self.inputs and held is not None and held(name):
                        os.utime(path, (now, now + settings.INPUT_TTL))
                        expired = False
                    if expired or stale_temp:
                        try:
                            path.unlink()
                            removed += 1
                        except FileNotFoundError:
                            pass
                        except OSError as exc:
                            if exc.errno != errno.ENOENT:
                                raise
                    elif not name.endswith(".tmp"):
                        total += st.st_size
        conn.hset(settings.STORAGE_STATS_KEY, FILE_BYTES, total)
        return removed

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "location": str(self.root)}
