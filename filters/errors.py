"""The engine's own errors: every refusal the engine can make, each with an HTTP status.

The API turns an `EngineError` into `{"error": {"code", "message", "details"}}` with
`http_status`; the worker records `code` and `message` as a job failure. Nothing else
should escape the engine for bad input, so callers never have to guess at a 5xx.
"""
from __future__ import annotations

from typing import Any


class EngineError(Exception):
    """Base class: a refusal with a machine code, an HTTP status and a readable message."""

    code: str = "engine_error"
    http_status: int = 400

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        """The API's error body (without the outer `error` key)."""
        return {"code": self.code, "message": self.message, "details": self.details}


class ValidationError(EngineError):
    """The steps are wrong: unknown filter or parameter, wrong type, out of range."""

    code = "invalid_steps"
    http_status = 400


class ImageTooLarge(EngineError):
    """The encoded image has more bytes than PIXELFLEET_MAX_BYTES allows."""

    code = "image_too_large"
    http_status = 413


class ImageTooManyPixels(EngineError):
    """The image (by its header) has more pixels than allowed: also decompression bombs."""

    code = "too_many_pixels"
    http_status = 422


class InvalidImage(EngineError):
    """Not an image, a format we do not accept, or data that fails to decode."""

    code = "invalid_image"
    http_status = 422


class FilterFailed(EngineError):
    """A filter refused its input (e.g. a resize target above the pixel limit)."""

    code = "filter_failed"
    http_status = 422
