"""Lets `python stress/x.py` work like `python -m stress.x` (the repo root on sys.path)."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
