"""The Pixelfleet DRF app: submit, status, results, workers, filters, health, images, stats.

A-core's views live in views_*.py; the operations endpoints (batch modes, /api/process,
metrics) are A-ops's and are appended from urls_ops.py.
"""
