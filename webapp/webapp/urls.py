"""Root URLs: the API (api/urls.py), its OpenAPI schema and docs, the web dashboard
(dashboard/urls.py) and DRF's static files.

DRF's browsable API needs its CSS/JS; they are served straight from the installed
package so gunicorn works without collectstatic (they are small and rarely fetched).
"""
from __future__ import annotations

from pathlib import Path

import rest_framework
from django.urls import include, path, re_path
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView

from api.views_docs import ApiRootView, DocsView

DRF_STATIC = Path(rest_framework.__file__).resolve().parent / "static"

urlpatterns = [
    path("", include("api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", DocsView.as_view(), name="docs"),
    path("dashboard/", include("dashboard.urls")),
    path("api/", ApiRootView.as_view(), name="api-root"),
    path("", ApiRootView.as_view(), name="root"),
    re_path(r"^static/(?P<path>rest_framework/.+)$", serve, {"document_root": DRF_STATIC}),
]

handler400 = "api.exceptions.handler400"
handler403 = "api.exceptions.handler403"
handler404 = "api.exceptions.handler404"
handler500 = "api.exceptions.handler500"
