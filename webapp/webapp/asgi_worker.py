"""The gunicorn worker class of the API: uvicorn (uvloop + httptools) serving webapp.asgi.

Why a subclass: uvicorn's defaults suit a stand-alone server; under gunicorn the
API's own middleware writes the access line (so uvicorn's is off) and Django has no
lifespan protocol (so uvicorn does not probe for it and log that it is missing).
"""
from __future__ import annotations

from uvicorn_worker import UvicornWorker


class PixelfleetUvicornWorker(UvicornWorker):
    CONFIG_KWARGS = {"loop": "uvloop", "http": "httptools", "lifespan": "off", "access_log": False}
