"""A private Herald stack in subprocesses, for the chaos harness and the soak.

PostgreSQL and Redis are started here, on random ports in a temporary directory, so
that the harness can kill and restart them without touching the machine's shared
servers (other test sessions use those). The emulator, the gateway and the workers are
the real `herald` commands.

    with Stack(Path(tmp)) as stack:
        stack.start_infra()
        env = stack.herald_env(...)
        ...
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.processes import (
    HERALD,
    Proc,
    free_port,
    herald_env,
    spawn,
    start_api,
    start_emulator,
    start_worker,
)

__all__ = ["JWT_SECRET", "Proc", "Stack", "free_port", "rss_kib", "wait_port"]

JWT_SECRET = "chaos-secret-" + "x" * 32
BOT_TOKEN = "123456:CHAOS-token"


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on port {port} after {timeout} s") from None
            time.sleep(0.05)


def rss_kib(pid: int) -> int:
    """Resident memory of one process in KiB, 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _as_postgres(argv: list[str]) -> list[str]:
    # initdb refuses to run as root: run the server's tools as the `postgres` user.
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if found:
        return Path(found[0]).parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is None:
        raise RuntimeError("PostgreSQL's server binaries (pg_ctl, initdb) are not installed")
    return Path(pg_ctl).parent


class PrivatePostgres:
    """A PostgreSQL cluster of our own: initdb in a temp dir, trust auth, a random port."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "pgdata"
        self.log = root / "postgres.log"
        self.port = free_port()
        self.bin = _pg_bin()

    @property
    def server_url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}"

    def _run(self, *argv: str) -> None:
        subprocess.run(
            _as_postgres([str(self.bin / argv[0]), *argv[1:]]),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )

    def init(self) -> None:
        self.dir.mkdir()
        self.log.touch()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(self.log, "postgres", "postgres")
            os.chmod(self.dir.parent, 0o755)
        self._run("initdb", "-D", str(self.dir), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        # fsync off: a killed server still recovers (the WAL is in the OS's cache); only a
        # machine crash could lose data, and this cluster lives for one run.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off"
            " -c max_connections=200 -c log_lock_waits=on"
        )
        self._run("pg_ctl", "-D", str(self.dir), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.dir), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "immediate") -> None:
        """`immediate` is a crash: no clean shutdown, crash recovery at the next start."""
        self.stop(mode)
        self.start()


class PrivateRedis:
    """A redis-server of our own on a random port, keeping nothing on disk (as in CI)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.root),
        ]
        self.proc = spawn("redis", argv, self.root)
        wait_port(self.port)

    def kill(self) -> None:
        """SIGKILL: whatever the queue held is gone."""
        if self.proc is not None:
            self.proc.kill(signal.SIGKILL)
            self.proc.popen.wait()
            self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()


@dataclass
class Stack:
    """Everything one run needs; every process it started is stopped on exit."""

    root: Path
    postgres: PrivatePostgres = field(init=False)
    redis: PrivateRedis = field(init=False)
    procs: list[Proc] = field(default_factory=list)
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))

    def __post_init__(self) -> None:
        self.postgres = PrivatePostgres(self.root)
        self.redis = PrivateRedis(self.root)

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for proc in reversed(self.procs):
            proc.stop(timeout=5)
        self.redis.kill()
        with contextlib.suppress(subprocess.CalledProcessError):
            self.postgres.stop("immediate")

    @property
    def database_url(self) -> str:
        return f"{self.postgres.server_url}/herald"

    def start_infra(self) -> None:
        self.postgres.init()
        self.postgres.start()
        self.redis.start()

    def herald_env(self, **settings: Any) -> dict[str, str]:
        """The environment of a `herald` process: nothing inherited from ours but PATH etc."""
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "redis_url": self.redis.url,
            "queue_name": f"herald:chaos:{self.run_id}",
            "jwt_secret": JWT_SECRET,
            "bot_token": BOT_TOKEN,
            "log_level": "WARNING",
        }
        values.update(settings)
        return herald_env(**values)

    def migrate(self, env: dict[str, str]) -> None:
        subprocess.run(
            [HERALD, "migrate"], env=env, check=True, cwd=self.root, stdout=subprocess.DEVNULL
        )

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Proc:
        proc = spawn(name, argv, self.root, env)
        self.procs.append(proc)
        return proc

    def start_emulator(self, *flags: str) -> tuple[Proc, str]:
        proc, base_url = start_emulator(self.root, *flags)
        self.procs.append(proc)
        return proc, base_url

    def start_api(self, env: dict[str, str]) -> tuple[Proc, str]:
        proc, base_url = start_api(env, self.root)
        self.procs.append(proc)
        return proc, base_url

    def start_worker(self, name: str, env: dict[str, str], processes: int = 1) -> Proc:
        proc = start_worker(env, self.root, processes=processes, name=name)
        self.procs.append(proc)
        return proc

    def iter_procs(self, prefix: str) -> Iterator[Proc]:
        return (p for p in self.procs if p.name.startswith(prefix) and p.alive())
