"""`?wait=S` on the task endpoints: answer when the task ends, holding no thread meanwhile.

Why async views in front of the DRF ones: under ASGI (docs/api.md, "Server model") a
sync view runs in a thread of its own, and a request that waited in one for a minute
would hold it; 200 waiting clients would hold 200. Here the wait happens in the event
loop (redis.asyncio BLMOVE on the task's end token, workers.notify) and everything else
— auth, throttling, parsing, the answer's body — stays in the DRF views of views_tasks,
called once before or after the wait. A JSON status is built here from one pipelined
read (fast_status; under the real server api.asgi_status answers it even before Django);
a browser's HTML, cancel and retry stay DRF's.

- GET /api/tasks/<id>/?wait=S      → 200 with the status once the task ended, or after S s.
- GET /api/tasks/<id>/result/?wait=S → 200 image; 409 when it failed or was canceled;
                                       202 with the status when S s passed first.
- POST /api/tasks/?wait=S          → 200 with the image when the task finished within S s;
                                       422 task_failed when it failed; else the usual 202.
"""
from __future__ import annotations

import functools
import logging
import math
from typing import Any, Callable

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse

from api import fleet_cache, views_tasks
from api.auth import ReadPermission
from api.exceptions import InvalidInput, error_body, to_response_parts
from workers import notify, settings, storage
from workers import status as task_state
from workers.logs import get_logger, log_event

log = get_logger("webapp.wait")

WAIT_PARAM = "wait"
ONE_TASK_ATTR = "pixelfleet_wait_one"   # set on a submit that waits: one image only (views_tasks.submit)
_active_waiters = 0                     # this process's waiting requests (one event loop)


def parse_wait(request: HttpRequest) -> float | None:
    """Seconds to wait from `?wait=`, None when absent; a bad value is a 400 that says so."""
    return wait_seconds(request.GET.get(WAIT_PARAM))


def wait_seconds(raw: str | None) -> float | None:
    """The `wait` query value as seconds (0..MAX_WAIT), None when absent; InvalidInput else."""
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= settings.MAX_WAIT:
        raise InvalidInput(f"wait must be a number of seconds from 0 to {settings.MAX_WAIT}, got {raw!r:.40}",
                           {"field": WAIT_PARAM, "max": settings.MAX_WAIT}, code="invalid_wait")
    return value


def _error_response(exc: Exception) -> HttpResponse:
    parts = to_response_parts(exc)
    if parts is None:
        raise exc
    status_code, body, headers = parts
    return JsonResponse(body, status=status_code, headers=headers)


def _rendered(view: Callable[..., Any]) -> Callable[..., HttpResponse]:
    """The DRF view, rendered in the thread that ran it (one thread hop, not two)."""
    def call(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        response = view(request, **kwargs)
        if hasattr(response, "render") and not getattr(response, "is_rendered", True):
            response.render()
        return response
    return sync_to_async(call)


_detail = _rendered(views_tasks.TaskDetailView.as_view())
_result = _rendered(views_tasks.TaskResultView.as_view())
_list = _rendered(views_tasks.TaskListView.as_view())
_legacy_status = _rendered(views_tasks.LegacyTaskStatusView.as_view())


async def wait_for_task(task_id: str, seconds: float) -> bool:
    """True once the task ended (or is unknown), False after `seconds`.

    Past MAX_WAITERS waiting requests in this process, it answers at once: the client
    sees the status as it is and may ask again (polling stays supported).
    """
    global _active_waiters
    if seconds <= 0 or _active_waiters >= settings.MAX_WAITERS:
        return await notify.ended_status(settings.get_async_redis(), task_id) in (None, *notify.ENDED)
    _active_waiters += 1
    try:
        return await notify.wait_until_ended(settings.get_async_redis(), task_id, seconds)
    finally:
        _active_waiters -= 1


async def _checked_wait(request: HttpRequest, task_id: str,
                        always: bool = False) -> tuple[float | None, HttpResponse | None]:
    """(seconds, None) for a valid wait by an allowed client, or (None, the refusal).
    `always`: check the id and the permission even without a wait (the fast status path)."""
    try:
        seconds = parse_wait(request)
        if seconds is not None or always:
            views_tasks.check_task_id(task_id)
            ReadPermission().has_permission(request, None)   # no wait slot for a refused client
        return seconds, None
    except Exception as exc:  # noqa: BLE001 - to_response_parts knows ours, re-raises the rest
        return None, _error_response(exc)


async def fast_status(task_id: str) -> HttpResponse:
    """The status JSON in the event loop: one pipelined round trip (the job's fields and
    its latest result, workers.status), no thread, no DRF. What pollers hit."""
    aconn = settings.get_async_redis()
    async with aconn.pipeline(transaction=False) as pipe:
        task_state.queue_status_reads(pipe, task_id)
        fields, results = await pipe.execute()
    fleet = await fleet_cache.afleet() if fields and fields[0] == b"queued" else ([], frozenset())
    info = task_state.status_from_reads(task_id, fields, results, lambda: fleet)
    if info is None:
        return _error_response(views_tasks.task_not_found(task_id))
    return JsonResponse(info, json_dumps_params={"separators": (",", ":"), "ensure_ascii": False})


def _wants_json(request: HttpRequest) -> bool:
    """A browser asking for HTML gets DRF's browsable page; API clients get the fast path."""
    return request.method == "GET" and "text/html" not in request.headers.get("Accept", "")


async def _status(request: HttpRequest, task_id: str, drf_view: Callable[..., Any]) -> HttpResponse:
    if request.method not in ("GET", "HEAD"):
        return await drf_view(request, task_id=task_id)
    seconds, refusal = await _checked_wait(request, task_id, always=True)
    if refusal is not None:
        return refusal
    if seconds is not None:
        await wait_for_task(task_id, seconds)
    if _wants_json(request):
        return await fast_status(task_id)
    return await drf_view(request, task_id=task_id)


async def task_detail(request: HttpRequest, task_id: str) -> HttpResponse:
    """GET (optionally `?wait=S`) the status; DELETE cancels. See views_tasks.TaskDetailView."""
    return await _status(request, task_id, _detail)


async def legacy_task_status(request: HttpRequest, task_id: str) -> HttpResponse:
    """GET /api/task/<id>/status/ (the original path), `?wait=S` too."""
    return await _status(request, task_id, _legacy_status)


async def task_result(request: HttpRequest, task_id: str) -> HttpResponse:
    """GET the result image; with `?wait=S`, 202 and the status when S s pass first."""
    if request.method not in ("GET", "HEAD"):
        return await _result(request, task_id=task_id)
    seconds, refusal = await _checked_wait(request, task_id)
    if refusal is not None:
        return refusal
    if seconds is not None and not await wait_for_task(task_id, seconds):
        response = await _detail(request, task_id=task_id)
        if response.status_code == 200:
            response.status_code = 202
            response["Location"] = views_tasks.task_urls(task_id)["result_url"]
        return response
    return await _result(request, task_id=task_id)


def _load_delivered_sync(task_id: str, ttl: int) -> tuple[bytes, str] | None:
    conn = settings.get_redis()
    found = storage.load_output(conn, task_id)
    if found is not None:
        storage.shorten_output(conn, task_id, ttl)
    return found


async def _load_delivered(task_id: str) -> tuple[bytes, str] | None:
    """The result bytes for a submit that waited, whose TTL then drops to DELIVERED_TTL:
    the client has them; a lost response can still be fetched again for a while.
    Results in Redis are read in the event loop; another store's in a thread."""
    ttl = min(settings.DELIVERED_TTL, settings.OUTPUT_TTL)
    if storage.current_store().in_redis:
        return await storage.aload_output_shortened(settings.get_async_redis(), task_id, ttl)
    return await sync_to_async(_load_delivered_sync)(task_id, ttl)


async def task_list(request: HttpRequest) -> HttpResponse:
    """GET lists tasks; POST submits, and with `?wait=S` answers with the image itself."""
    if request.method != "POST" or WAIT_PARAM not in request.GET:
        return await _list(request)
    try:
        seconds = parse_wait(request)
    except InvalidInput as exc:
        return _error_response(exc)
    setattr(request, ONE_TASK_ATTR, True)
    accepted = await _list(request)
    data = getattr(accepted, "data", None)
    if accepted.status_code != 202 or not isinstance(data, dict) or "task_id" not in data:
        return accepted
    answer = await waited_submit(data, seconds or 0.0)
    if answer is None:
        return accepted
    status, body, headers = answer
    if isinstance(body, bytes):
        headers = dict(headers)
        response = HttpResponse(body, content_type=headers.pop("content-type"), status=status)
        for name, value in headers.items():
            response[name] = value
        return response
    return JsonResponse(body, status=status, headers=headers)


async def waited_submit(accepted: dict[str, Any], seconds: float) -> tuple[int, Any, dict[str, str]] | None:
    """What a submit with `?wait=S` answers once its task was accepted: (200, the image,
    headers) when it finished within S s, (422 task_failed or 404 result_expired, the
    error body, headers); None when S s passed first (the caller answers its 202).
    Shared by this view and the ASGI fast path (api.asgi_submit)."""
    task_id = accepted["task_id"]
    if not await wait_for_task(task_id, seconds):
        return None
    state = await notify.ended_status(settings.get_async_redis(), task_id)
    if state == "finished":
        found = await _load_delivered(task_id)
        if found is not None:
            body, content_type = found
            extension = content_type.rpartition("/")[2].replace("jpeg", "jpg")
            return 200, body, {"content-type": content_type,
                               "Content-Disposition": f'inline; filename="{task_id}.{extension}"',
                               "X-Task-Id": task_id, "Location": accepted["status_url"]}
        return 404, error_body("result_expired", f"task {task_id} finished but its result is gone "
                               "from Redis; submit again", {"task_id": task_id}), {}
    try:
        body = await sync_to_async(views_tasks.load_status)(task_id)
    except Exception as exc:  # noqa: BLE001 - NotFound if it expired meanwhile; others re-raised
        parts = to_response_parts(exc)
        if parts is None:
            raise
        return parts
    reason = body.get("failure_reason") or body.get("error") or "no result was stored"
    return 422, error_body("task_failed", f"task {task_id} is {body['status']}: {reason}", body), \
        {"X-Task-Id": task_id, "Location": accepted["status_url"]}


def _front(view: Callable[..., Any], view_class: type) -> Callable[..., Any]:
    """The async view, logging what escapes it (Django's own 500 logger is silenced in
    settings.LOGGING) and visible to schema generators as the DRF view behind it."""
    @functools.wraps(view)
    async def front(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        try:
            return await view(request, **kwargs)
        except Exception as exc:  # noqa: BLE001 - Redis down → 503; anything else is a bug
            if to_response_parts(exc) is not None:
                return _error_response(exc)
            log_event(log, "unhandled_error", logging.ERROR, exc_info=exc, view=view.__name__)
            return JsonResponse(error_body("internal_error", "The server failed to handle this request; "
                                           "it has been logged."), status=500)
    front.cls = view_class            # type: ignore[attr-defined]
    front.initkwargs = {}             # type: ignore[attr-defined]
    front.csrf_exempt = True          # type: ignore[attr-defined]  (bearer tokens, no cookies)
    return front


task_list_view = _front(task_list, views_tasks.TaskListView)
task_detail_view = _front(task_detail, views_tasks.TaskDetailView)
task_result_view = _front(task_result, views_tasks.TaskResultView)
legacy_task_status_view = _front(legacy_task_status, views_tasks.LegacyTaskStatusView)
