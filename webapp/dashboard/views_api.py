"""/dashboard/api/: the API's own views, signed in by session (with CSRF) instead of a bearer.

`session_view` subclasses an API view and swaps only its permission, so every figure,
check and error message is the API's. Actions are logged as `dashboard_action` lines next
to the API's own events (submitted, retried, canceled, queue_paused …). The only views of
its own are the image previews, which the API has no reason to offer.
"""
from __future__ import annotations

import logging
from functools import lru_cache

from django.http import HttpResponse
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.views import APIView

from api.exceptions import InvalidInput, NotFound
from api.views_tasks import check_task_id, load_status
from dashboard import access, thumbnails
from filters import samples
from workers import settings, storage
from workers.logs import get_logger, log_event
from workers.status import task_input_digest

log = get_logger("webapp.dashboard")


class DashboardAccess:
    """Mixin: session permission, and one log line per action (method, path, status, who)."""

    permission_classes = [access.SessionPermission]
    authentication_classes: list = []
    schema = None            # the API's OpenAPI describes /api/ only; these are its mirrors

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if request.method not in SAFE_METHODS:
            error = getattr(response, "data", None)
            code = error.get("error", {}).get("code") if isinstance(error, dict) and isinstance(error.get("error"), dict) else None
            log_event(log, "dashboard_action", logging.INFO if response.status_code < 400 else logging.WARNING,
                      method=request.method, path=request.path, status=response.status_code,
                      who=access.who(request), **({"error": code} if code else {}))
        return response


def session_view(view_class: type[APIView], **initkwargs):
    """The API view `view_class` behind the dashboard's session sign-in."""
    cls = type(f"Dashboard{view_class.__name__}", (DashboardAccess, view_class), {})
    return cls.as_view(**initkwargs)


def _size(request: Request) -> int:
    raw = request.query_params.get("size", str(thumbnails.DEFAULT_SIZE))
    if not raw.isdigit() or not thumbnails.MIN_SIZE <= int(raw) <= thumbnails.MAX_SIZE:
        raise InvalidInput(f"size must be an integer from {thumbnails.MIN_SIZE} to {thumbnails.MAX_SIZE}, "
                           f"got {raw[:20]!r}", {"field": "size"})
    return int(raw)


def _png(data: bytes) -> HttpResponse:
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "private, max-age=300"
    return response


class TaskThumbnailView(DashboardAccess, APIView):
    """GET: a preview of the task's input (`which="input"`) or its result (`"output"`)."""

    which = "input"

    def get(self, request: Request, task_id: str) -> HttpResponse:
        check_task_id(task_id)
        conn = settings.get_redis()
        if self.which == "output":
            state = load_status(task_id)
            found = storage.load_output(conn, task_id) if state["status"] == "finished" else None
            if found is None:
                raise NotFound(f"task {task_id} has no result image ({state['status']})", code="no_result")
            data = found[0]
        else:
            load_status(task_id)                 # 404 in the API's words for an unknown task
            digest = task_input_digest(conn, task_id)
            if digest is None:
                raise NotFound(f"task {task_id} has no stored input image", code="no_input")
            data = storage.load_input(conn, digest)
        return _png(thumbnails.thumbnail_png(data, _size(request)))

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)


@lru_cache(maxsize=16)
def _sample_thumbnail(name: str, size: int) -> bytes:
    """Samples never change: drawn and shrunk once per process and size."""
    return thumbnails.thumbnail_png(samples.sample_png(name), size)


class SampleThumbnailView(DashboardAccess, APIView):
    """GET: a preview of a sample image (the playground shows it before a run)."""

    def get(self, request: Request, name: str) -> HttpResponse:
        if name not in samples.SAMPLE_NAMES:
            raise NotFound(f"no sample {name[:40]!r} (known: {', '.join(samples.SAMPLE_NAMES)})", code="unknown_sample")
        return _png(_sample_thumbnail(name, _size(request)))

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)
