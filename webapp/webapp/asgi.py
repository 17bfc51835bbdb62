"""ASGI entry point (unused by `make run`, which serves WSGI with gunicorn; kept for uvicorn users)."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
