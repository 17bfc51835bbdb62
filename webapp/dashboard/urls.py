"""/dashboard/ pages and /dashboard/api/ (the API's views behind the session sign-in)."""
from __future__ import annotations

from pathlib import Path

from django.urls import path, re_path
from django.views.static import serve

from api import views_filters, views_health, views_metrics, views_queues, views_tasks
from dashboard import views_pages
from dashboard.views_api import SampleThumbnailView, TaskThumbnailView, session_view

STATIC = Path(__file__).resolve().parent / "static" / "dashboard"

api = [
    path("metrics/", session_view(views_metrics.MetricsView)),
    path("metrics/history/", session_view(views_queues.MetricsHistoryView)),
    path("workers/", session_view(views_health.WorkersStatusView)),
    path("filters/", session_view(views_filters.FiltersView)),
    path("queues/", session_view(views_queues.QueueListView)),
    path("queues/<str:name>/pause/", session_view(views_queues.QueueActionView, action="pause")),
    path("queues/<str:name>/resume/", session_view(views_queues.QueueActionView, action="resume")),
    path("queues/<str:name>/empty/", session_view(views_queues.QueueEmptyView)),
    path("tasks/", session_view(views_tasks.TaskListView)),
    path("tasks/retry-failed/", session_view(views_queues.BulkRetryView)),
    path("tasks/<str:task_id>/", session_view(views_tasks.TaskDetailView)),
    path("tasks/<str:task_id>/retry/", session_view(views_tasks.TaskRetryView)),
    path("tasks/<str:task_id>/result/", session_view(views_tasks.TaskResultView)),
    path("tasks/<str:task_id>/input.png", TaskThumbnailView.as_view(which="input")),
    path("tasks/<str:task_id>/output.png", TaskThumbnailView.as_view(which="output")),
    path("samples/<str:name>.png", SampleThumbnailView.as_view()),
]

urlpatterns = [
    path("", views_pages.overview, name="dashboard"),
    path("queues/", views_pages.queues, name="dashboard-queues"),
    path("tasks/", views_pages.tasks, name="dashboard-tasks"),
    path("tasks/<str:task_id>/", views_pages.task, name="dashboard-task"),
    path("playground/", views_pages.playground, name="dashboard-playground"),
    path("login/", views_pages.login, name="dashboard-login"),
    path("logout/", views_pages.logout, name="dashboard-logout"),
    *[path("api/" + str(p.pattern), p.callback) for p in api],
    re_path(r"^static/(?P<path>[A-Za-z0-9_.-]+)$", serve, {"document_root": STATIC}),
]
