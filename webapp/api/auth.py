"""Bearer-token access control, read from the environment at request time.

PIXELFLEET_API_TOKENS (comma-separated) turns protection on: every endpoint that
submits, cancels or retries needs `Authorization: Bearer <token>` (401 without one,
403 with a wrong one). Reads stay open unless PIXELFLEET_READ_REQUIRES_TOKEN=1. Unset
tokens mean an open API (development). No Django user model is involved.
"""
from __future__ import annotations

import hashlib
import hmac
import os

from rest_framework.permissions import SAFE_METHODS, BasePermission

from api.exceptions import Forbidden, Unauthorized


def configured_tokens() -> list[str]:
    """The accepted tokens; read per request so an operator's change needs no code path."""
    raw = os.environ.get("PIXELFLEET_API_TOKENS", "")
    return [token.strip() for token in raw.split(",") if token.strip()]


def reads_require_token() -> bool:
    return os.environ.get("PIXELFLEET_READ_REQUIRES_TOKEN", "").strip().lower() in {"1", "true", "yes", "on"}


def bearer_token(request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None when absent."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def token_matches(given: str) -> bool:
    """Whether `given` is one of the configured tokens (the dashboard's sign-in uses it too).

    Constant time: fixed-length digests (no length hint), each token compared, none
    skipped. The token itself is never logged, nor stored (throttle keys use token_id).
    """
    given_digest = _digest(given)
    matches = [hmac.compare_digest(given_digest, _digest(token)) for token in configured_tokens()]
    return any(matches)


def check_token(request) -> None:
    """Raise 401/403 unless the request carries a configured token (no-op when none are)."""
    if not configured_tokens():
        return
    given = bearer_token(request)
    if given is None:
        raise Unauthorized()
    if not token_matches(given):
        raise Forbidden("The bearer token is not one of PIXELFLEET_API_TOKENS.")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def token_id(token: str) -> str:
    """A short stand-in for a token where one must be named (throttle keys): not the secret."""
    return "t-" + hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()[:16]


class ReadPermission(BasePermission):
    """Default for every view: safe methods open unless reads require a token; writes need one."""

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS and not reads_require_token():
            return True
        check_token(request)
        return True
