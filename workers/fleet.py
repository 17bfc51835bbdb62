"""Bring the whole fleet up locally: `python -m workers.fleet` (what `make run` runs).

Starts, in order: the embedded redis-server (AOF on, data in ./var/redis, so queued
tasks survive a restart; a password made on first start and kept in
./var/redis/password, mode 0600, which reaches the API and workers in REDIS_URL;
maxmemory PIXELFLEET_STORAGE_MAX_MB, default a quarter of the machine's memory, with
noeviction) unless REDIS_URL is set, with the images as files in ./var/redis/images
(PIXELFLEET_STORAGE_URL overrides; with REDIS_URL they stay in that Redis, which other
hosts may share: local_storage_url); the API under gunicorn with uvicorn
workers (ASGI, webapp/gunicorn.conf.py; cwd webapp/,
bind PIXELFLEET_API_BIND, default 127.0.0.1:8000) unless --no-api; and the workers of
the original system — worker-1 io, worker-2 cpu, worker-3 all — or the list in
PIXELFLEET_WORKERS / --workers ("name:caps,…", several capabilities joined by '+').

It supervises them: a child that exits while the fleet is not stopping is restarted
with capped backoff. The embedded redis-server too: restarted on the same port with the
same data folder, so its AOF (fsync on every write by default, PIXELFLEET_REDIS_FSYNC)
gives back every task accepted before the crash; the workers and the API reconnect by
themselves. Ctrl-C / SIGTERM stops everything gracefully — workers finish
their current task (a second Ctrl-C makes them hand it back and exit at once), then
the API, then Redis — and leaves no process behind. Children also get SIGTERM from the
kernel if the fleet itself is killed (Linux PR_SET_PDEATHSIG).
"""
from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from workers import settings
from workers.embedded_redis import RedisServer, free_port, load_or_create_password
from workers.logs import configure_logging, get_logger, log_event

log = get_logger("workers.fleet")
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKERS = "worker-1:io,worker-2:cpu,worker-3:all"
BACKOFF_MAX_S = 30.0
URL_FILE = "url"           # in the data folder: the embedded Redis's URL, for make rq-info
STABLE_AFTER_S = 60.0      # a child up this long gets its backoff reset


def parse_worker_specs(spec: str) -> list[tuple[str, str]]:
    """"worker-1:io,worker-2:cpu+io" → [("worker-1", "io"), ("worker-2", "cpu+io")].

    An item without a colon continues the previous worker's capabilities, so
    "worker-1:io,cpu" also reads as worker-1 with io and cpu. A count after `*` starts
    several: "cpu:cpu*3" → cpu-1, cpu-2, cpu-3.
    """
    workers: list[tuple[str, str]] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        if ":" in item:
            name, caps = (s.strip() for s in item.split(":", 1))
            if not name or not caps:
                raise ValueError(f"worker spec {item!r}: expected name:capabilities")
            workers.append((name, caps))
        elif workers:
            workers[-1] = (workers[-1][0], f"{workers[-1][1]}+{item}")
        else:
            raise ValueError(f"worker spec {item!r}: expected name:capabilities")
    expanded: list[tuple[str, str]] = []
    for name, caps in workers:
        caps, star, count = caps.partition("*")
        if not star:
            expanded.append((name, caps))
            continue
        if not count.strip().isdigit() or not 1 <= int(count) <= 64:
            raise ValueError(f"worker spec {name}:{caps}*{count}: the count must be 1 to 64")
        expanded += [(f"{name}-{i}", caps) for i in range(1, int(count) + 1)]
    workers = expanded
    names = [n for n, _ in workers]
    if len(set(names)) != len(names):
        raise ValueError(f"worker names must be unique, got {names}")
    from workers.routing import parse_capabilities

    for name, caps in workers:
        parse_capabilities(caps)   # a typo fails here, not in a restart loop
    return workers


def numba_threads_env(local_workers: int) -> dict[str, str]:
    """NUMBA_NUM_THREADS so that the workers on this host share its cores.

    Every worker runs numba's parallel kernels with one thread per core by default;
    N workers on one host would run N×cores threads, and tiny tasks then spend their
    time waiting at the pool's barrier (measured: 2 workers on 2 cores ran tiny tasks
    3.5× slower than 1). An operator's own NUMBA_NUM_THREADS wins.
    """
    if os.environ.get("NUMBA_NUM_THREADS", "").strip():
        return {}
    return {"NUMBA_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // max(1, local_workers)))}


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the fleet dies (Linux); new session otherwise."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class Child:
    """One supervised process: how to start it and its restart bookkeeping."""

    name: str
    cmd: list[str]
    cwd: Path
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = 1.0
    next_start: float = 0.0
    pids: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, env=self.env, preexec_fn=_die_with_parent)
        self.started = time.monotonic()
        self.pids.append(self.proc.pid)
        log_event(log, "child_started", child=self.name, pid=self.proc.pid, restarts=self.restarts)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass


class Fleet:
    """Redis (maybe), API (maybe) and workers, supervised until stop() is asked for."""

    def __init__(self, workers: list[tuple[str, str]], api: bool, api_bind: str, redis_url: str | None,
                 redis_port: int, data_dir: Path, stop_timeout: float) -> None:
        self.worker_specs = workers
        self.api = api
        self.api_bind = api_bind
        self.redis_url = redis_url
        self.redis_port = redis_port
        self.data_dir = data_dir
        self.stop_timeout = stop_timeout
        self.redis: RedisServer | None = None
        self.storage_url = local_storage_url(data_dir, redis_url)
        self.redis_fsync = settings.env_str("PIXELFLEET_REDIS_FSYNC", "always")
        self.redis_restarts = 0
        self.redis_backoff = 1.0
        self.redis_next_start = 0.0
        self.redis_started = 0.0
        self.children: list[Child] = []
        self.stopping = False
        self.stop_signals = 0

    # --- start --------------------------------------------------------------------------
    def start_redis(self) -> str:
        if self.redis_url:
            return self.redis_url
        port = self.redis_port
        if _port_busy(port):
            port = free_port()
            log_event(log, "redis_port_busy", wanted=self.redis_port, using=port)
        if self.redis_fsync not in ("always", "everysec", "no"):
            raise SystemExit(f"PIXELFLEET_REDIS_FSYNC must be always, everysec or no, got {self.redis_fsync!r}")
        from workers.storage_budget import embedded_maxmemory_mb

        self.redis = RedisServer(port=port, data_dir=self.data_dir, appendonly=True,
                                 appendfsync=self.redis_fsync, maxmemory_mb=embedded_maxmemory_mb(),
                                 password=load_or_create_password(self.data_dir)).start()
        self.redis_started = time.monotonic()
        log_event(log, "child_started", child="redis", pid=self.redis.pid, restarts=0, port=port,
                  data_dir=str(self.data_dir), appendfsync=self.redis_fsync)
        write_url_file(self.data_dir, self.redis.url)
        return self.redis.url

    def build_children(self, url: str) -> None:
        env = dict(os.environ, REDIS_URL=url, PYTHONUNBUFFERED="1", PIXELFLEET_STORAGE_URL=self.storage_url)
        worker_env = dict(env, **numba_threads_env(len(self.worker_specs)))
        if self.api:
            api_env = dict(env, PIXELFLEET_API_BIND=self.api_bind)
            # `python -m gunicorn`: this interpreter's packages (uvicorn's worker class), whatever
            # the gunicorn script's shebang says. gunicorn.conf.py picks the server model.
            self.children.append(Child("api", [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
                                       ROOT / "webapp", api_env))
        for name, caps in self.worker_specs:
            self.children.append(Child(name, [sys.executable, "-m", "workers", "--name", name,
                                              "--capabilities", caps], ROOT, worker_env))

    def starting_line(self, url: str) -> str:
        """Printed at once: what is coming up and roughly how long it will take."""
        from workers.fleet_ready import COLD_ESTIMATE, WARM_ESTIMATE, kernels_cached
        from workers.warmup import lock_dir

        what = ("the API and " if self.api else "") + f"{len(self.worker_specs)} worker(s)"
        estimate = WARM_ESTIMATE if kernels_cached(lock_dir()) else COLD_ESTIMATE
        return f"Pixelfleet is starting (Redis {settings.redacted_url(url)}): waiting for {what}; {estimate}."

    def banner(self, url: str, watch=None) -> str:
        """The banner; with `watch` (a workers.fleet_ready.ReadinessWatch), its first line says
        whether the fleet is really up and how long it took. The Redis password is never shown."""
        if watch is None:
            head = "Pixelfleet is up."
        elif watch.done:
            head = f"Pixelfleet is up (ready in {watch.elapsed:.1f} s)."
        else:
            head = (f"Pixelfleet is NOT fully up after {watch.elapsed:.0f} s; still waiting for: "
                    f"{', '.join(watch.waiting_for())} (tasks for it wait in their queues; see the log above).")
        shown = settings.redacted_url(url)
        lines = ["", head,
                 f"  Redis    {shown}" + (f"  (embedded, AOF in {self.data_dir}, maxmemory {self.redis.maxmemory_mb} MB)"
                                             if self.redis else "  (REDIS_URL)"),
                 f"  Images   {settings.redacted_url(self.storage_url)}  ("
                 + ("files beside the embedded Redis; " if self.storage_url != settings.storage_url() else "")
                 + "PIXELFLEET_STORAGE_URL)"]
        if self.api:
            base = f"http://{self.api_bind.split(',')[0]}"
            lines += [f"  API      {base}/api/", f"  Docs     {base}/api/docs/", f"  Web      {base}/dashboard/"]
        else:
            lines.append("  API      not started (--no-api)")
        lines.append("  Workers  " + ", ".join(f"{n} ({c})" for n, c in self.worker_specs))
        rq = Path(sys.executable).with_name("rq")
        rq_cmd = _relative(rq)
        if self.redis is not None:   # the URL file (mode 0600) holds the secret, the banner does not
            url_arg = f'"$(cat {_relative(self.data_dir.resolve() / URL_FILE)})"'
        else:
            url_arg = '"$REDIS_URL"' if shown != url else url
        lines += [f"  Queues   make rq-info   ({rq_cmd} info --url {url_arg})",
                  "  Tools    make check | make metrics | make monitor | make stress N=50   (README: Operator tools)",
                  "  Stop     Ctrl-C (twice: running tasks are handed back to their queues)", ""]
        return "\n".join(lines)

    # --- supervise ----------------------------------------------------------------------
    def supervise_redis(self) -> None:
        """The embedded redis-server died: the same port, data folder and AOF, with backoff."""
        server = self.redis
        if server is None or server.alive() or self.stopping:
            return
        now = time.monotonic()
        if self.redis_next_start == 0.0:
            code = server.process.poll() if server.process is not None else None
            uptime = now - self.redis_started
            if uptime > STABLE_AFTER_S:
                self.redis_backoff = 1.0
            self.redis_next_start = now + self.redis_backoff
            log_event(log, "child_exited", logging.WARNING, child="redis", pid=server.pid, exit_code=code,
                      uptime_s=round(uptime, 1), restart_in_s=self.redis_backoff)
            self.redis_backoff = min(self.redis_backoff * 2, BACKOFF_MAX_S)
            server.process = None
        elif now >= self.redis_next_start:
            self.redis_next_start = 0.0
            self.redis_restarts += 1
            try:
                server.start(timeout=60)   # replaying a long AOF takes a while
            except RuntimeError as exc:
                log_event(log, "redis_restart_failed", logging.ERROR, child="redis", error=str(exc))
                server.process = None
                self.redis_started = time.monotonic()
                return
            self.redis_started = time.monotonic()
            log_event(log, "child_started", child="redis", pid=server.pid, restarts=self.redis_restarts,
                      port=server.port, data_dir=str(server.data_dir), appendfsync=server.appendfsync,
                      start_s=round(self.redis_started - now, 2))

    def supervise_once(self) -> None:
        self.supervise_redis()
        now = time.monotonic()
        for child in self.children:
            if child.proc is None or child.alive():
                continue
            if child.next_start == 0.0:
                code = child.proc.returncode
                uptime = now - child.started
                if uptime > STABLE_AFTER_S:
                    child.backoff = 1.0
                child.next_start = now + child.backoff
                log_event(log, "child_exited", child=child.name, pid=child.proc.pid, exit_code=code,
                          uptime_s=round(uptime, 1), restart_in_s=child.backoff)
                child.backoff = min(child.backoff * 2, BACKOFF_MAX_S)
            elif now >= child.next_start:
                child.restarts += 1
                child.next_start = 0.0
                child.start()

    def request_stop(self, signum: int, frame) -> None:
        self.stop_signals += 1
        self.stopping = True
        name = signal.Signals(signum).name
        if self.stop_signals == 1:
            log_event(log, "stopping", signal=name, reason="finishing running tasks, then exiting")
            self._signal_all(signal.SIGTERM)
        else:
            log_event(log, "stopping_now", signal=name, reason="running tasks go back to their queues")
            self._signal_all(signal.SIGTERM)   # the workers' second signal: hand back and exit

    def readiness_watch(self, url: str):
        """A ReadinessWatch on the API and every worker: the banner waits for it."""
        from workers.fleet_ready import ReadinessWatch, probe_url

        return ReadinessWatch(url, [name for name, _ in self.worker_specs],
                              probe_url(self.api_bind) if self.api else None)

    def report_readiness(self, url: str, watch):
        """One poll; prints progress, then the banner once. Returns None when done with it."""
        watch.poll()
        if watch.done or watch.should_give_up():
            print(self.banner(url, watch), flush=True)
            log_event(log, "fleet_ready" if watch.done else "fleet_not_ready", elapsed_s=round(watch.elapsed, 1),
                      waiting=watch.waiting_for() or None)
            return None if watch.done else watch
        line = watch.progress_line()
        if line:
            print(line, flush=True)
        return watch

    def _signal_all(self, sig: int) -> None:
        for child in self.children:
            child.signal(sig)

    def shutdown(self) -> None:
        """Wait for the children (escalating after stop_timeout), then stop Redis."""
        deadline = time.monotonic() + self.stop_timeout
        escalated = False
        while any(c.alive() for c in self.children):
            if time.monotonic() > deadline and not escalated:
                log_event(log, "stop_timeout", waiting=[c.name for c in self.children if c.alive()])
                self._signal_all(signal.SIGTERM)
                escalated, deadline = True, time.monotonic() + 10
            elif time.monotonic() > deadline:
                self._signal_all(signal.SIGKILL)
            time.sleep(0.1)
        for child in self.children:
            if child.proc is not None:
                child.proc.wait()
        if self.redis is not None:
            self.redis.stop()
            write_url_file(self.data_dir, None)
        log_event(log, "stopped", children=len(self.children))

    def run(self) -> int:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        try:
            url = self.start_redis()
            self.build_children(url)
            for child in self.children:
                if not self.stopping:
                    child.start()
            watch = self.readiness_watch(url)
            if not self.stopping:
                print(self.starting_line(url), flush=True)
            while not self.stopping:
                self.supervise_once()
                if watch is not None:
                    watch = self.report_readiness(url, watch)
                time.sleep(0.2)
        finally:
            if self.stop_signals == 0:   # ended by an error, not by a signal: stop children too
                self.stopping = True
                self._signal_all(signal.SIGTERM)
            self.shutdown()
        return 0


def local_storage_url(data_dir: Path, redis_url: str | None) -> str:
    """Where the fleet's images live: PIXELFLEET_STORAGE_URL when set; else, with the
    embedded Redis, files in <data dir>/images; else (REDIS_URL: a Redis other hosts
    may share) the default, the images in that Redis.

    Why files for the local fleet: everything runs on this host, and an image in Redis is
    copied into its AOF (fsynced on every write by default), read back through redis-py's
    parser and freed again. Measured with `bench-e2e --distinct` (every upload new), a
    6000×4000 JPEG cost 25 ms of Redis CPU per image in Redis and 2.5 ms as a file, and
    the whole fleet 131 against 89 ms."""
    chosen = os.environ.get("PIXELFLEET_STORAGE_URL", "").strip()
    if chosen:
        return chosen
    if redis_url:
        return settings.DEFAULT_STORAGE_URL
    return f"file://{(data_dir / 'images').resolve()}"


def write_url_file(data_dir: Path, url: str | None) -> None:
    """<data dir>/url (var/redis/url): the embedded Redis's URL for `make rq-info` (a free
    port if 6379 was busy); removed when the fleet stops. It carries the password, so it is
    written with mode 0600, like the password file beside it."""
    path = data_dir / URL_FILE
    try:
        path.unlink(missing_ok=True)
        if url is not None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(url + "\n")
    except OSError:
        pass


def _relative(path: Path) -> str:
    """`path` relative to the working directory when inside it (shorter commands to copy)."""
    return os.path.relpath(path, Path.cwd()) if path.is_relative_to(Path.cwd()) else str(path)


def _port_busy(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default=settings.env_str("PIXELFLEET_WORKERS", DEFAULT_WORKERS),
                        help=f'"name:caps,…" (caps joined by +, "name:caps*N" for N of them); '
                             f'default {DEFAULT_WORKERS}')
    parser.add_argument("--no-api", action="store_true", help="do not start the API")
    parser.add_argument("--api-bind", default=settings.env_str("PIXELFLEET_API_BIND", "127.0.0.1:8000"))
    parser.add_argument("--redis-port", type=int, default=settings.env_int("PIXELFLEET_REDIS_PORT", 6379),
                        help="port of the embedded redis-server (a free one if busy)")
    parser.add_argument("--data-dir", default=str(settings.redis_dir()),
                        help="embedded Redis data and its password file (default ./var/redis)")
    parser.add_argument("--stop-timeout", type=float, default=settings.env_float("PIXELFLEET_STOP_TIMEOUT", 60.0),
                        help="s to let workers finish their tasks on Ctrl-C before handing them back")
    args = parser.parse_args(argv)
    configure_logging("fleet")
    try:
        workers = parse_worker_specs(args.workers)
    except ValueError as exc:
        print(f"python -m workers.fleet: {exc}", file=sys.stderr)
        return 2
    redis_url = os.environ.get("REDIS_URL", "").strip() or None
    fleet = Fleet(workers, api=not args.no_api, api_bind=args.api_bind, redis_url=redis_url,
                  redis_port=args.redis_port, data_dir=Path(args.data_dir), stop_timeout=args.stop_timeout)
    return fleet.run()


if __name__ == "__main__":
    sys.exit(main())
