"""Django settings for the Pixelfleet API.

No database: the API keeps nothing of its own; tasks, images, counters and workers live
in Redis (workers.settings). DRF runs without django.contrib.auth (UNAUTHENTICATED_USER
None), and access control is a bearer-token permission (api.auth). Everything an
operator tunes comes from the environment; see docs/api.md for the list.
"""
from __future__ import annotations

import os
import secrets
import sys
import tomllib
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from filters.io import MAX_BYTES
from workers.settings import env_int

BASE_DIR = Path(__file__).resolve().parent.parent          # webapp/
REPO_ROOT = BASE_DIR.parent


def _project_version() -> str:
    """The version written once, in pyproject.toml (the images copy it too)."""
    try:
        with open(REPO_ROOT / "pyproject.toml", "rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


PIXELFLEET_VERSION = _project_version()


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name, "").strip()
    return [item.strip() for item in raw.split(",") if item.strip()] if raw else default


DEBUG = _env_flag("PIXELFLEET_DEBUG")
TESTING = "pytest" in sys.modules or _env_flag("PIXELFLEET_TESTING")
DEVELOPMENT = DEBUG or TESTING or os.environ.get("PIXELFLEET_ENV", "").strip().lower() == "development"


def _secret_key() -> str:
    """DJANGO_SECRET_KEY (or the file DJANGO_SECRET_KEY_FILE names); a throw-away key only in development."""
    key = os.environ.get("DJANGO_SECRET_KEY", "").strip()
    key_file = os.environ.get("DJANGO_SECRET_KEY_FILE", "").strip()
    if not key and key_file:
        try:
            key = Path(key_file).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"DJANGO_SECRET_KEY_FILE={key_file!r} cannot be read: {exc}") from None
    if key:
        return key
    if DEVELOPMENT:
        return "dev-only-" + secrets.token_urlsafe(40)
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set. Set DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) for "
        "production, or PIXELFLEET_ENV=development / PIXELFLEET_DEBUG=1 on a development machine.")


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = _env_list("PIXELFLEET_ALLOWED_HOSTS",
                          ["*"] if DEVELOPMENT else ["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "rest_framework",
    "drf_spectacular",
    "api",
    "dashboard",
]

MIDDLEWARE = [
    "api.middleware.RequestLogMiddleware",
    "api.middleware.BodySizeLimitMiddleware",
    # Django's own, with their hooks run inline under ASGI (no thread hop each; api.middleware).
    "api.middleware.SecurityMiddleware",
    "api.middleware.SessionMiddleware",   # the dashboard's sign-in only
    "api.middleware.CommonMiddleware",
    "api.middleware.XFrameOptionsMiddleware",
]
# `manage.py check --deploy`: no CSRF middleware because no cookie or session
# authenticates the API (bearer tokens only; DRF's APIView is csrf-exempt anyway); the
# dashboard, whose session does, checks CSRF on each of its views (dashboard.access).
# TLS with HSTS/redirects belongs to the proxy in front of gunicorn (docs/api.md).
SILENCED_SYSTEM_CHECKS = ["security.W003", "security.W004", "security.W008"]

# Dashboard sessions live in Redis (dashboard/sessions.py): no database, and valid across
# API processes. PIXELFLEET_SECURE_COOKIES=1 behind TLS marks both cookies Secure.
SESSION_ENGINE = "dashboard.sessions"
SESSION_COOKIE_AGE = env_int("PIXELFLEET_DASHBOARD_SESSION_S", 12 * 3600)
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _env_flag("PIXELFLEET_SECURE_COOKIES")
CSRF_TRUSTED_ORIGINS = _env_list("PIXELFLEET_CSRF_TRUSTED_ORIGINS", [])

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"
APPEND_SLASH = False   # the original paths are matched exactly; see api/urls.py

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
}]

DATABASES: dict = {}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

# DRF's browsable API needs its CSS/JS; api/urls.py serves them from the installed
# package, so gunicorn needs no collectstatic step.
STATIC_URL = "/static/"

# --- Request size limits, tied to the engine's image limits (filters.io) ---------------
# A JSON body may carry one maximum-size image in base64 (4/3 of its bytes) plus slack;
# several images in one request share that budget. BodySizeLimitMiddleware answers 413
# from Content-Length before anything is read.
MAX_REQUEST_BYTES = env_int("PIXELFLEET_MAX_REQUEST_BYTES", 0) or (MAX_BYTES * 4 // 3 + 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024     # bigger uploads spool to a temp file
DATA_UPLOAD_MAX_NUMBER_FILES = 32
MAX_IMAGES_PER_REQUEST = env_int("PIXELFLEET_MAX_IMAGES_PER_REQUEST", 16)

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["api.auth.ReadPermission"],
    "UNAUTHENTICATED_USER": None,
    "UNAUTHENTICATED_TOKEN": None,
    "EXCEPTION_HANDLER": "api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Pixelfleet API",
    "DESCRIPTION": "Submit image-filter pipelines to a Redis-backed worker fleet, follow "
                   "their status and download results.",
    "VERSION": PIXELFLEET_VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SECURITY": [{"bearerAuth": []}],
    "APPEND_COMPONENTS": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    "PREPROCESSING_HOOKS": ["api.schema.drop_slashless_aliases"],
    # Request bodies and parameters as strict as the validation (api/schema_bodies.py).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "api.schema.tighten_to_validation"],
    # Schema warnings are for developers (`manage.py spectacular --fail-on-warn`, the
    # tests); printed on every /api/schema/ request they would break the one-line logs.
    "DISABLE_ERRORS_AND_WARNINGS": not DEBUG,
    "ENUM_NAME_OVERRIDES": {"FilterNameEnum": "api.serializers.FILTER_CHOICES"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {
        # Our middleware writes one access line per request; Django's own request
        # logger would repeat every 4xx as a second, multi-line event.
        "django.request": {"handlers": ["null"], "propagate": False},
        "django.server": {"handlers": ["null"], "propagate": False},
        # The dashboard logs a refused action as its own line (dashboard_action, error=csrf_failed).
        "django.security.csrf": {"handlers": ["null"], "propagate": False},
    },
}
