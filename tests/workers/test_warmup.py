"""Kernels are compiled once per machine: each filter under its own lock beside numba's cache."""
from __future__ import annotations

import threading
import time

from workers import warmup
from workers.warmup import compile_lock, lock_dir, warm_kernels


def test_locks_live_beside_numbas_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))   # read per call; numba's own is untouched
    assert lock_dir() == tmp_path / "cache"
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    assert lock_dir() == warmup.FILTERS_DIR / "__pycache__"


def test_a_filter_another_process_compiles_is_waited_for_and_the_rest_warmed_meanwhile(tmp_path, monkeypatch):
    # Locks in a private folder (numba's cache stays where it is: warm after the first run).
    monkeypatch.setattr(warmup, "lock_dir", lambda: tmp_path)
    folder = tmp_path
    result: dict = {}
    with compile_lock("cpu-resize", folder) as held:        # "another process" compiles resize
        assert held
        worker = threading.Thread(target=lambda: result.update(warm_kernels(["io"])), daemon=True)
        worker.start()
        deadline = time.monotonic() + 120

        def free(name: str) -> bool:
            with compile_lock(name, folder, wait=False) as ok:
                return ok
        # Everything else of io is warmed (its lock taken and released) while resize waits.
        while time.monotonic() < deadline and not (worker.is_alive() and "grayscale" in _done(folder)):
            time.sleep(0.05)
        assert worker.is_alive(), "warm_kernels did not wait for the locked filter"
        assert all(free(f"cpu-{name}") for name in ("blur", "brightness", "contrast", "grayscale"))
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert list(result) == ["resize", "blur", "brightness", "contrast", "grayscale"]


def _done(folder) -> set[str]:
    """Filters whose lock file exists and is free: warmed by someone."""
    names = set()
    for path in folder.glob("pixelfleet-warmup-cpu-*.lock"):
        name = path.stem.removeprefix("pixelfleet-warmup-cpu-")
        with compile_lock(f"cpu-{name}", folder, wait=False) as free:
            if free:
                names.add(name)
    return names


def test_compile_lock_without_a_folder_never_blocks():
    with compile_lock("cpu-blur", None, wait=False) as held:
        assert held
