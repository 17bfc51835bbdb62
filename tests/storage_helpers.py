"""Helpers for the storage tests and the soak: distinct photo-like uploads (stress.photos),
what the images take in Redis or in a file store, and Redis's OOM refusals."""
from __future__ import annotations

from pathlib import Path

import redis

from stress.photos import photo_jpeg  # noqa: F401  (the tests' uploads)
from workers import settings


def use_store(kind: str, tmp_path: Path, monkeypatch) -> str:
    """Point the store at `kind`: "file" (a directory under tmp_path) or "redis"; returns it."""
    if kind == "file":
        monkeypatch.setenv("PIXELFLEET_STORAGE_URL", f"file://{tmp_path / 'images'}")
    else:
        monkeypatch.delenv("PIXELFLEET_STORAGE_URL", raising=False)
    return kind


def redis_image_bytes(conn: redis.Redis) -> dict[str, int]:
    """Bytes of input and output images stored in Redis (the values themselves)."""
    inputs = sum(conn.strlen(k) for k in conn.scan_iter(settings.INPUT_KEY.format(digest="*"), count=1000))
    outputs = sum(conn.hstrlen(k, "data") for k in conn.scan_iter(settings.OUTPUT_KEY.format(task_id="*"), count=1000))
    return {"inputs": int(inputs), "outputs": int(outputs)}


def file_image_bytes(root: Path) -> dict[str, int]:
    """Bytes of input and output files under a file store's root."""
    def total(folder: Path) -> int:
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
    return {"inputs": total(root / "inputs"), "outputs": total(root / "outputs")}


def oom_errors(conn: redis.Redis) -> int:
    """How many commands Redis refused for maxmemory (INFO errorstats, Redis ≥ 6.2)."""
    stats = conn.info("errorstats")
    return int((stats.get("errorstat_OOM") or {}).get("count", 0))
