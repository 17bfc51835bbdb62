"""App config: installs the one-line log format when the API process starts, and drops
Django's per-request database and cache hooks, which this database-less API never needs."""
from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Pixelfleet API"

    def ready(self) -> None:
        # Every Pixelfleet process logs one line per event in the same format; the API
        # configures it once at start-up (gunicorn workers each import the app).
        import logging
        from workers.logs import configure_logging

        if not any(getattr(h, "_pixelfleet_handler", False) for h in logging.getLogger().handlers):
            configure_logging("api")
        drop_per_request_hooks()


def drop_per_request_hooks() -> None:
    """Disconnect Django's request_started/request_finished receivers for databases and
    caches: DATABASES is empty and no cache is used, so they do nothing — but under ASGI
    each signal with a sync receiver costs a thread hop per request (the status path
    that pollers hit would pay two). Kept when a database is configured."""
    from django.conf import settings
    from django.core import signals
    from django.core.cache import close_caches
    from django.db import close_old_connections, reset_queries

    if settings.DATABASES:
        return
    signals.request_started.disconnect(reset_queries)
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_caches)
