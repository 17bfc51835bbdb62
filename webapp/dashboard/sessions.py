"""Dashboard sessions kept in the fleet's Redis (SESSION_ENGINE = "dashboard.sessions").

Why not Django's database or signed-cookie sessions: the API has no database, and a
signed cookie depends on SECRET_KEY, which in development is drawn per process (each
gunicorn worker would reject the others' cookies). A Redis key per session, with the
session's expiry as its TTL, works across processes and machines like everything else.
The value is plain JSON; what comes back is checked before use (untrusted input).
"""
from __future__ import annotations

import json
from typing import Any

import redis
from django.contrib.sessions.backends.base import CreateError, SessionBase

from workers import settings


def _key(session_key: str) -> str:
    return settings.DASHBOARD_SESSION_KEY.format(key=session_key)


class SessionStore(SessionBase):
    """Django's session interface over one Redis string per session."""

    def load(self) -> dict[str, Any]:
        raw = None
        if self.session_key:
            try:
                raw = settings.get_redis().get(_key(self.session_key))
            except redis.RedisError:
                raw = None
        try:
            data = json.loads(raw) if raw is not None else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self._session_key = None
            return {}
        return data

    def exists(self, session_key: str) -> bool:
        return bool(settings.get_redis().exists(_key(session_key)))

    def create(self) -> None:
        while True:
            self._session_key = self._get_new_session_key()
            try:
                self.save(must_create=True)
            except CreateError:
                continue
            self.modified = True
            return

    def save(self, must_create: bool = False) -> None:
        if self.session_key is None:
            return self.create()
        data = json.dumps(self._get_session(no_load=must_create), separators=(",", ":"))
        stored = settings.get_redis().set(_key(self._get_or_create_session_key()), data,
                                          ex=max(1, int(self.get_expiry_age())), nx=must_create)
        if must_create and not stored:
            raise CreateError

    def delete(self, session_key: str | None = None) -> None:
        key = session_key or self.session_key
        if key:
            settings.get_redis().delete(_key(key))

    @classmethod
    def clear_expired(cls) -> None:
        """Nothing to do: Redis expires sessions itself."""
