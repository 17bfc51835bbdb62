"""Where image bytes live, picked by PIXELFLEET_STORAGE_URL: `redis://` or `file:///dir`.

One small module per backend behind workers.blobstores.base.BlobStore; reference counts,
budgets and the API never see which one is in use. An S3-compatible backend would be one
more module here (put/get/head/delete of objects, expiry by lifecycle rule or by the
sweep) and one more line in `open_store` — see docs/deployment.md.
"""
from __future__ import annotations

from functools import lru_cache
from urllib.parse import unquote, urlsplit

from workers.blobstores.base import BlobStore


@lru_cache(maxsize=8)
def open_store(url: str) -> BlobStore:
    """The store for a storage URL; ValueError saying what is accepted otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme == "redis":
        if parts.netloc or parts.path.strip("/"):
            raise ValueError(f"PIXELFLEET_STORAGE_URL={url!r}: `redis://` keeps images in the fleet's own Redis "
                             "(REDIS_URL); a separate image Redis is not supported")
        from workers.blobstores.redis_store import RedisBlobStore
        return RedisBlobStore()
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(f"PIXELFLEET_STORAGE_URL={url!r}: a file store needs an absolute path, "
                             "e.g. file:///var/lib/pixelfleet/images")
        from workers.blobstores.file_store import FileBlobStore
        return FileBlobStore(unquote(parts.path))
    raise ValueError(f"PIXELFLEET_STORAGE_URL={url!r}: expected redis:// (default) or file:///absolute/dir")


__all__ = ["BlobStore", "open_store"]
