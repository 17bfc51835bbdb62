"""URL patterns of queue control, bulk retry and metrics history (api/views_queues.py).

Kept apart from api/urls.py like urls_ops.py. They are put *before* the task routes:
`api/tasks/retry-failed/` would otherwise be read as a task id.
"""
from __future__ import annotations

from django.urls import path

from api import views_queues


def both(route: str, view, name: str) -> list:
    """`route` with and without a trailing slash, as every other API path."""
    return [path(route + "/", view, name=name), path(route, view, name=name + "-noslash")]


urlpatterns = [
    *both("api/queues", views_queues.QueueListView.as_view(), "queues"),
    *both("api/queues/<str:name>/pause", views_queues.QueueActionView.as_view(action="pause"), "queue-pause"),
    *both("api/queues/<str:name>/resume", views_queues.QueueActionView.as_view(action="resume"), "queue-resume"),
    *both("api/queues/<str:name>/empty", views_queues.QueueEmptyView.as_view(), "queue-empty"),
    *both("api/tasks/retry-failed", views_queues.BulkRetryView.as_view(), "tasks-retry-failed"),
    *both("api/metrics/history", views_queues.MetricsHistoryView.as_view(), "metrics-history"),
]
