"""URL patterns of the operations endpoints (A-ops); api/urls.py appends them.

Kept apart from api/urls.py so the two API engineers never edit the same file. Like
A-core's routes, each path answers with and without its trailing slash (scripts of the
original system call /api/process without one).
"""
from __future__ import annotations

from django.urls import path

from api import views_batch, views_metrics, views_pixelart

BATCH_MODES = ("sequential", "threading", "multiprocessing", "compare", "compare-all", "stress")


def both(route: str, view, name: str) -> list:
    """`route` with and without a trailing slash, so neither form is a 404 or a redirect."""
    return [path(route + "/", view, name=name), path(route, view, name=name + "-noslash")]


urlpatterns = [
    *[pattern for mode in BATCH_MODES
      for pattern in both(f"api/process-batch/{mode}", views_batch.BatchView.as_view(mode=mode),
                          f"process-batch-{mode}")],
    *both("api/process", views_pixelart.PixelArtView.as_view(), "process-pixelart"),
    *both("api/metrics", views_metrics.MetricsView.as_view(), "metrics"),
    *both("metrics", views_metrics.prometheus_view, "prometheus"),
]
