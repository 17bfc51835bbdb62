"""Every error the API returns has one shape: {"error": {"code", "message", "details"}}.

The views (A-core's and A-ops's) raise these APIException subclasses or let the
engine's `EngineError`s through; `exception_handler` (REST_FRAMEWORK
EXCEPTION_HANDLER) turns all of them, DRF's own parse/validation/auth errors and
Django's request-size refusals into that body with a 4xx status. Whatever else escapes
a view becomes a JSON 500 (logged with its traceback), never Django's HTML page.
"""
from __future__ import annotations

import logging
import re
from typing import Any

import redis

from django.core.exceptions import (PermissionDenied as DjangoPermissionDenied, RequestDataTooBig,
                                    SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent)
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework import status
from rest_framework.response import Response

from filters.errors import EngineError
from workers.logs import get_logger, log_event

log = get_logger("webapp.errors")


ACCEPTED_MEDIA_TYPES = ("application/json", "multipart/form-data", "application/x-www-form-urlencoded")


class ApiError(drf.APIException):
    """Base of our errors: a status, a machine code, a message and optional details."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "bad_request"
    default_detail = "Bad request."

    def __init__(self, message: str | None = None, details: Any = None, code: str | None = None) -> None:
        super().__init__(message or self.default_detail, code or self.default_code)
        self.message = message or str(self.default_detail)
        self.details = details
        self.error_code = code or self.default_code


class BadRequest(ApiError):
    default_code = "bad_request"


class InvalidInput(ApiError):
    """A field has the wrong type or value (format, quality, device, delay …)."""

    default_code = "invalid_input"


class InvalidTaskId(ApiError):
    default_code = "invalid_task_id"


class NotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"
    default_detail = "Not found."


class Conflict(ApiError):
    """The request is valid but the resource is in the wrong state (e.g. not finished)."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class PayloadTooLarge(ApiError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


class UnsupportedMediaType(ApiError):
    """A body whose content type the API does not read (or that contradicts its content)."""

    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    default_code = "unsupported_media_type"


class Unauthorized(ApiError):
    """No credentials: 401 with WWW-Authenticate (DRF would coerce its own to 403)."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "not_authenticated"
    default_detail = "Authentication required: send Authorization: Bearer <token>."


class Forbidden(ApiError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "forbidden"
    default_detail = "The token is not valid."


class ServiceUnavailable(ApiError):
    """Redis (or another dependency) is down: the client may retry later."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"
    default_detail = "A dependency of the API is unavailable; retry later."


class ImproperRate(ApiError):
    """An operator setting is malformed: a server-side error whose message says what to fix."""

    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    default_code = "misconfigured"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _flatten_validation(detail: Any, prefix: str = "") -> list[str]:
    """DRF's nested {"field": ["msg"]} as readable 'field: msg' lines."""
    if isinstance(detail, dict):
        lines: list[str] = []
        for key, value in detail.items():
            name = key if key != "non_field_errors" else ""
            lines += _flatten_validation(value, f"{prefix}.{name}" if prefix and name else (name or prefix))
        return lines
    if isinstance(detail, list):
        return [line for item in detail for line in _flatten_validation(item, prefix)]
    return [f"{prefix}: {detail}" if prefix else str(detail)]


def _drf_code(exc: drf.APIException) -> str:
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else getattr(exc, "default_code", "error")


def to_response_parts(exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]] | None:
    """(status, body, headers) for the errors we know; None for a genuine bug."""
    headers: dict[str, str] = {}
    if isinstance(exc, ApiError):
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = 'Bearer realm="pixelfleet"'
        if getattr(exc, "retry_after_s", None):   # api.limits.TooBusy
            headers["Retry-After"] = str(exc.retry_after_s)
        return exc.status_code, error_body(exc.error_code, exc.message, exc.details), headers
    if isinstance(exc, EngineError):
        retry_after = getattr(exc, "retry_after", None)   # storage full or busy: come back later
        if retry_after is not None:
            headers["Retry-After"] = str(int(retry_after))
        return exc.http_status, error_body(exc.code, exc.message, exc.details or None), headers
    if isinstance(exc, drf.ParseError):
        return 400, error_body("malformed_request", f"The request body could not be parsed: {exc.detail}"), headers
    if isinstance(exc, drf.UnsupportedMediaType):
        seen = re.search(r'"(.*)"', str(exc.detail))
        media_type = seen.group(1) if seen else None
        said = (f"The body's Content-Type is {media_type}, which the API does not read." if media_type else
                "The request has a body but no Content-Type header.")
        return 415, error_body("unsupported_media_type",
                               f"{said} Send application/json, multipart/form-data or "
                               f"application/x-www-form-urlencoded.",
                               {"content_type": media_type or None, "accepted": list(ACCEPTED_MEDIA_TYPES)}), headers
    if isinstance(exc, drf.Throttled):
        if exc.wait is not None:
            headers["Retry-After"] = str(int(exc.wait) + 1)
        return 429, error_body("throttled", f"Too many requests: {exc.detail}",
                               {"retry_after_s": exc.wait}), headers
    if isinstance(exc, drf.ValidationError):
        lines = _flatten_validation(exc.detail)
        return 400, error_body("invalid_input", "; ".join(lines) or "Invalid input.", exc.detail), headers
    if isinstance(exc, drf.MethodNotAllowed):
        return 405, error_body("method_not_allowed", str(exc.detail)), headers
    if isinstance(exc, drf.NotAcceptable):
        return 406, error_body("not_acceptable", str(exc.detail)), headers
    if isinstance(exc, (drf.NotFound, Http404)):
        return 404, error_body("not_found", str(getattr(exc, "detail", "") or "Not found.")), headers
    if isinstance(exc, drf.APIException):
        return exc.status_code, error_body(_drf_code(exc), str(exc.detail)), headers
    if isinstance(exc, redis.RedisError):
        headers["Retry-After"] = "5"
        return 503, error_body("redis_unavailable", f"Redis is unreachable or failed ({type(exc).__name__}); "
                               "retry later"), headers
    if isinstance(exc, RequestDataTooBig):
        return 413, error_body("request_too_large", f"The request body is too large: {exc}"), headers
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return 400, error_body("too_many_fields", str(exc)), headers
    if isinstance(exc, SuspiciousOperation):
        return 400, error_body("bad_request", str(exc) or "Bad request."), headers
    if isinstance(exc, DjangoPermissionDenied):
        return 403, error_body("forbidden", str(exc) or "Forbidden."), headers
    return None


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: one error shape for every failure of a DRF view."""
    parts = to_response_parts(exc)
    if parts is None:
        view = context.get("view")
        log_event(log, "unhandled_error", logging.ERROR, exc_info=exc,
                  view=type(view).__name__ if view else None)
        status_code, body, headers = 500, error_body(
            "internal_error", "The server failed to handle this request; it has been logged."), {}
    else:
        status_code, body, headers = parts
    return Response(body, status=status_code, headers=headers)


def json_error(status_code: int, code: str, message: str, details: Any = None) -> JsonResponse:
    """A plain-Django JSON error (middleware, 404/500 handlers), same shape as DRF's."""
    return JsonResponse(error_body(code, message, details), status=status_code)


def handler404(request, exception=None) -> JsonResponse:  # noqa: ARG001 - Django's signature
    return json_error(404, "not_found", f"No endpoint at {request.path}; see /api/docs/ for the list.")


def handler400(request, exception=None) -> JsonResponse:  # noqa: ARG001
    parts = to_response_parts(exception) if exception is not None else None
    if parts:
        status_code, body, _ = parts
        return JsonResponse(body, status=status_code)
    return json_error(400, "bad_request", "Bad request.")


def handler403(request, exception=None) -> JsonResponse:  # noqa: ARG001
    return json_error(403, "forbidden", "Forbidden.")


def handler500(request) -> JsonResponse:  # noqa: ARG001
    return json_error(500, "internal_error", "The server failed to handle this request; it has been logged.")
