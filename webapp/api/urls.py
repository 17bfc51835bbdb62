"""Every API path. The original system's paths are kept exactly (with and without the
trailing slash where it was written without one); A-ops's endpoints come from urls_ops.py.
"""
from __future__ import annotations

from django.urls import path

from api import views_filters, views_health, views_images, views_stats, views_tasks, views_wait
from api.urls_ops import urlpatterns as ops_urlpatterns
from api.urls_queues import urlpatterns as queue_urlpatterns


def both(route: str, view, name: str) -> list:
    """`route/` and `route` for the same view: APPEND_SLASH cannot redirect a POST."""
    return [path(route + "/", view, name=name), path(route, view, name=name + "-noslash")]


urlpatterns = queue_urlpatterns + [
    *both("api/health", views_health.HealthView.as_view(), "health"),
    *both("api/workers/status", views_health.WorkersStatusView.as_view(), "workers-status"),
    *both("api/stats", views_stats.StatsView.as_view(), "stats"),
    *both("api/filters", views_filters.FiltersView.as_view(), "filters"),
    *both("api/image/info", views_images.ImageInfoView.as_view(), "image-info"),
    *both("api/image/4k", views_images.Image4kView.as_view(), "image-4k"),
    *both("api/image/slow", views_images.SlowImageView.as_view(), "image-slow"),
    # Async fronts of the DRF task views: `?wait=S` waits in the event loop (views_wait).
    *both("api/tasks", views_wait.task_list_view, "tasks"),
    *both("api/tasks/<str:task_id>", views_wait.task_detail_view, "task-detail"),
    *both("api/tasks/<str:task_id>/result", views_wait.task_result_view, "task-result"),
    *both("api/tasks/<str:task_id>/retry", views_tasks.TaskRetryView.as_view(), "task-retry"),
    *both("api/task/<str:task_id>/status", views_wait.legacy_task_status_view, "task-status-legacy"),
    *both("api/process-batch/distributed", views_tasks.DistributedBatchView.as_view(), "process-batch-distributed"),
]

urlpatterns += ops_urlpatterns
