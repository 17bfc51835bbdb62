"""Who may see and do what on the dashboard: the API's tokens, asked for once per session.

The rules are the API's (api.auth): with PIXELFLEET_API_TOKENS set, every action needs a
token, and with PIXELFLEET_READ_REQUIRES_TOKEN reads do too. A person types the token
once on /dashboard/login/; the session keeps only its SHA-256, checked against the
configured tokens on every request, so removing a token from the environment signs its
sessions out. Every unsafe request also passes Django's CSRF check.
"""
from __future__ import annotations

import hashlib
import hmac

from django.middleware.csrf import CsrfViewMiddleware
from rest_framework.permissions import SAFE_METHODS, BasePermission

from api.auth import configured_tokens, reads_require_token, token_matches
from api.exceptions import Forbidden, Unauthorized

SESSION_FIELD = "pixelfleet_token_sha256"
LOGIN_URL = "/dashboard/login/"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def auth_required() -> bool:
    """Whether tokens are configured at all (else the dashboard, like the API, is open)."""
    return bool(configured_tokens())


def signed_in(request) -> bool:
    """The session holds the digest of a token that is still configured."""
    held = request.session.get(SESSION_FIELD)
    if not isinstance(held, str):
        return False
    return any(hmac.compare_digest(held, _digest(token)) for token in configured_tokens())


def may_read(request) -> bool:
    return not (auth_required() and reads_require_token()) or signed_in(request)


def may_act(request) -> bool:
    return not auth_required() or signed_in(request)


def who(request) -> str:
    """How the logs name the person acting: a token fingerprint, never the token."""
    held = request.session.get(SESSION_FIELD)
    if isinstance(held, str) and signed_in(request):
        return f"token:{held[:8]}"
    return "open" if not auth_required() else "anonymous"


def sign_in(request, token: str) -> bool:
    """Keep the token's digest in a fresh session when the token is a configured one."""
    token = (token or "").strip()
    if not token or not token_matches(token):
        return False
    request.session.cycle_key()          # no session fixation across the sign-in
    request.session[SESSION_FIELD] = _digest(token)
    return True


def sign_out(request) -> None:
    request.session.flush()


def csrf_failure(request) -> str | None:
    """Django's CSRF verdict for a request (None when it passes), as DRF's SessionAuthentication asks it."""
    check = CsrfViewMiddleware(lambda req: None)
    check.process_request(request)
    return check.process_view(request, None, (), {})


class SessionPermission(BasePermission):
    """The API's ReadPermission, with the session's sign-in in place of a bearer header."""

    def has_permission(self, request, view) -> bool:
        if request.method not in SAFE_METHODS:
            refused = csrf_failure(request._request)
            if refused is not None:
                raise Forbidden("CSRF check failed: reload the dashboard page and try again.",
                                code="csrf_failed")
            if not may_act(request):
                raise Unauthorized(f"Sign in with an API token on {LOGIN_URL} to act.")
        elif not may_read(request):
            raise Unauthorized(f"Reading needs an API token here: sign in on {LOGIN_URL}.")
        return True
