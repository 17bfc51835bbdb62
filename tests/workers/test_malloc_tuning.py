"""workers.malloc_tuning: an image-sized buffer freed and allocated again is reused, not
faulted in anew (page faults are counted by the kernel, not timed: deterministic)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = """
import os, resource, sys
from workers.malloc_tuning import tune_malloc
print(tune_malloc())
chunks = [os.urandom(65536) for _ in range(100)]
def one_upload():
    body = b"".join(chunks)      # 6.5 MB, as the API joins an upload
    part = body[100:-100]        # and slices the file out of it
    del body, part
for _ in range(3):
    one_upload()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    one_upload()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def faults_per_upload(keep_mb: str | None) -> tuple[bool, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXELFLEET_MALLOC", "MALLOC_"))}
    if keep_mb is not None:
        env["PIXELFLEET_MALLOC_KEEP_MB"] = keep_mb
    out = subprocess.run([sys.executable, "-c", ROUNDS], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] == "True", float(out[1])


def test_tuned_processes_reuse_upload_sized_buffers():
    tuned, faults = faults_per_upload(None)
    assert tuned
    assert faults < 50, f"{faults} page faults per 6.5 MB upload: buffers are not reused"


def test_zero_leaves_glibc_alone_and_then_every_upload_faults_its_pages_in():
    tuned, faults = faults_per_upload("0")
    assert not tuned
    assert faults > 1000, "the measurement above would not tell the difference"
