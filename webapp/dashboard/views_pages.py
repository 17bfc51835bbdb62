"""The dashboard's HTML pages: shells that their script fills from /dashboard/api/.

Each page sets the CSRF cookie (the scripts send it back as X-CSRFToken) and, when reads
need a token, sends a person who has not signed in to the sign-in page first.
"""
from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.csrf import csrf_protect, ensure_csrf_cookie
from django.views.decorators.http import require_http_methods

from api.views_tasks import check_task_id
from dashboard import access
from filters.samples import SAMPLE_NAMES
from workers import settings
from workers.logs import get_logger, log_event

log = get_logger("webapp.dashboard")
NAV = (("overview", "Overview", "/dashboard/"), ("queues", "Queues", "/dashboard/queues/"),
       ("tasks", "Tasks", "/dashboard/tasks/"), ("playground", "Playground", "/dashboard/playground/"))


def _context(request: HttpRequest, page: str, title: str, **extra) -> dict:
    return {"page": page, "title": title, "nav": NAV, "auth_required": access.auth_required(),
            "signed_in": access.signed_in(request), "may_act": access.may_act(request),
            "pause_check_s": settings.PAUSE_CHECK_S, **extra}


def _page(page: str, title: str, template: str):
    @ensure_csrf_cookie
    @require_http_methods(["GET", "HEAD"])
    def view(request: HttpRequest, **kwargs) -> HttpResponse:
        if not access.may_read(request):
            return HttpResponseRedirect(f"{access.LOGIN_URL}?{urlencode({'next': request.get_full_path()})}")
        if "task_id" in kwargs:
            check_task_id(kwargs["task_id"])
        return render(request, template, _context(request, page, title, **kwargs))
    view.__name__ = f"{page}_page"
    return view


overview = _page("overview", "Overview", "dashboard/overview.html")
queues = _page("queues", "Queues", "dashboard/queues.html")
tasks = _page("tasks", "Tasks", "dashboard/tasks.html")
task = _page("tasks", "Task", "dashboard/task.html")


@ensure_csrf_cookie
@require_http_methods(["GET", "HEAD"])
def playground(request: HttpRequest) -> HttpResponse:
    if not access.may_read(request):
        return HttpResponseRedirect(f"{access.LOGIN_URL}?{urlencode({'next': request.path})}")
    return render(request, "dashboard/playground.html",
                  _context(request, "playground", "Playground", samples=SAMPLE_NAMES))


def _safe_next(target: str | None) -> str:
    """Only a dashboard path: a sign-in must never redirect off the site."""
    if target and target.startswith("/dashboard/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/dashboard/"


@csrf_protect
@ensure_csrf_cookie
@require_http_methods(["GET", "HEAD", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    """Ask for an API token once; the session then stands for it (dashboard.access)."""
    target = _safe_next(request.POST.get("next") or request.GET.get("next"))
    if not access.auth_required():           # an open API has nothing to sign in to
        return HttpResponseRedirect(target)
    error, status = None, 200
    if request.method == "POST":
        if access.sign_in(request, request.POST.get("token", "")):
            log_event(log, "dashboard_sign_in", who=access.who(request))
            return HttpResponseRedirect(target)
        log_event(log, "dashboard_sign_in_refused", logging.WARNING, client=request.META.get("REMOTE_ADDR"))
        error, status = "That token is not one of the API's tokens (PIXELFLEET_API_TOKENS).", 403
    return render(request, "dashboard/login.html",
                  _context(request, "login", "Sign in", next=target, error=error), status=status)


@csrf_protect
@require_http_methods(["POST"])
def logout(request: HttpRequest) -> HttpResponse:
    log_event(log, "dashboard_sign_out", who=access.who(request))
    access.sign_out(request)
    return HttpResponseRedirect("/dashboard/")
