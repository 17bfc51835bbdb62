"""WSGI entry point: `gunicorn -c webapp/gunicorn.conf.py webapp.wsgi` (see gunicorn.conf.py)."""
import os
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent.parent
for _path in (str(_ROOT), str(_ROOT / "webapp")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
