"""gunicorn settings for the Pixelfleet API: `cd webapp && gunicorn -c gunicorn.conf.py`.

(From the repository root: `gunicorn -c webapp/gunicorn.conf.py`.) Server model: gunicorn
supervises PIXELFLEET_API_WORKERS processes, each an event loop (uvicorn, uvloop +
httptools) serving Django's ASGI app. Why: a `?wait=` request may stay open for up to
a minute; in the event loop it holds no thread, so 200 waiting clients do not starve
submits and health checks (a gthread worker would need a thread per waiting client).
Sync views (all DRF views) run in a thread per request, as Django does under ASGI, so
/api/image/slow/ or /api/process holding one for seconds blocks nothing else either.
No preload_app: the app is imported in each worker after the fork, because a process
that forks must not have started numba's OpenMP pool.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

_WEBAPP = Path(__file__).resolve().parent
_ROOT = _WEBAPP.parent
for _path in (str(_ROOT), str(_WEBAPP)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from gunicorn.glogging import Logger  # noqa: E402

from workers.logs import KeyValueFormatter  # noqa: E402
from workers.settings import env_int, env_str  # noqa: E402

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def _loopback_only(addresses: list[str]) -> bool:
    """True when every bind address is reachable from this machine only."""
    hosts = [address.rsplit(":", 1)[0] if not address.startswith("unix:") else "unix" for address in addresses]
    return all(host in LOOPBACK_HOSTS or host == "unix" for host in hosts)


wsgi_app = "webapp.asgi:application"          # an ASGI app, served by the uvicorn worker class
pythonpath = f"{_ROOT},{_WEBAPP}"
bind = [address.strip() for address in env_str("PIXELFLEET_API_BIND", "127.0.0.1:8000").split(",")]
worker_class = "webapp.asgi_worker.PixelfleetUvicornWorker"
workers = env_int("PIXELFLEET_API_WORKERS", 2)
preload_app = False
timeout = env_int("PIXELFLEET_API_TIMEOUT", 150)        # > the longest bounded wait (/api/process: 120 s)
graceful_timeout = env_int("PIXELFLEET_API_GRACEFUL_TIMEOUT", 30)
keepalive = 5
limit_request_line = 8190
# The API's middleware writes the access line (with the time the view took) in the fleet's
# one-line format; gunicorn's own access log would repeat it in another format.
accesslog = None
errorlog = "-"
loglevel = env_str("PIXELFLEET_API_LOGLEVEL", "info")
proc_name = "pixelfleet-api"
# gunicorn 25+ opens a control socket at one fixed per-user path; several APIs on a host
# (tests, fleets) would fight over it, and nothing here uses gunicornc.
control_socket_disable = True


class OneLineLogger(Logger):
    """gunicorn's own lines (boot, worker start/exit) in the fleet's one-line format."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers + self.access_log.handlers:
            handler.setFormatter(KeyValueFormatter())


logger_class = OneLineLogger


def on_starting(server) -> None:
    """A server that listens on loopback only is a development server (`make run`).

    It may use a throw-away secret key; anything reachable from elsewhere needs
    DJANGO_SECRET_KEY, and webapp/settings.py refuses to start without it, saying what to
    set. Decided here, on the final bind (command line included), before workers fork.
    """
    has_key = os.environ.get("DJANGO_SECRET_KEY") or os.environ.get("DJANGO_SECRET_KEY_FILE")
    if not has_key and not os.environ.get("PIXELFLEET_ENV") and _loopback_only(list(server.cfg.bind)):
        os.environ["PIXELFLEET_ENV"] = "development"
        server.log.info("no DJANGO_SECRET_KEY and bound to loopback only: development mode, throw-away key")


def post_fork(server, worker) -> None:
    """Each API process keeps upload-sized buffers for reuse (workers/allocator.py)."""
    from workers.allocator import keep_freed_memory

    keep_freed_memory()
