"""The Django project package of the Pixelfleet API (settings, root URLs, WSGI/ASGI)."""
