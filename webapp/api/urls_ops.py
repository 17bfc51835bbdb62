"""URL patterns of the operations endpoints (A-ops); api/urls.py appends them.

Kept apart from api/urls.py so the two API engineers never edit the same file.
"""
from __future__ import annotations

from django.urls import path

from api import views_batch, views_metrics, views_pixelart

BATCH_MODES = ("sequential", "threading", "multiprocessing", "compare", "compare-all", "stress")

urlpatterns = [
    *[
        path(f"api/process-batch/{mode}/", views_batch.BatchView.as_view(mode=mode),
             name=f"process-batch-{mode}")
        for mode in BATCH_MODES
    ],
    path("api/process", views_pixelart.PixelArtView.as_view(), name="process-pixelart"),
    path("api/process/", views_pixelart.PixelArtView.as_view(), name="process-pixelart-slash"),
    path("api/metrics/", views_metrics.MetricsView.as_view(), name="metrics"),
    path("metrics", views_metrics.prometheus_view, name="prometheus"),
]
