"""App config: installs the one-line log format when the API process starts."""
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
