"""Bad configuration fails fast (issue 12.2), through the real processes.

Each process checks its settings before it forks or binds: one line on stderr naming the
variable, exit status 2, the value never echoed. Before, `herald worker` without a bot
token forked its processes and each died with a 30-line traceback, restarted forever.
A store that is down at start is waited for with a log line per retry, not a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PG_SERVER, REDIS_URL, TEST_JWT_SECRET
from tests.support.databases import drop_database
from tests.support.processes import HERALD, free_port, herald_env, run_herald


def valid_env() -> dict[str, str]:
    """A configuration every process accepts, with PostgreSQL on a closed port and no wait:
    a process that wrongly passes its checks exits 1 at once instead of running."""
    return herald_env(
        database_url=f"postgresql+asyncpg://herald:pg-password-7@127.0.0.1:{free_port()}/h",
        redis_url=REDIS_URL,
        jwt_secret=TEST_JWT_SECRET,
        bot_token="123456:AAE-valid-form-token",
        startup_wait_seconds=0,
        queue_name=f"herald:test:{secrets.token_hex(4)}",
    )


# (command, variables set (None: unset), the variable the line must name, a secret value
# that must not appear)
BAD_SETTINGS: dict[str, tuple[list[str], dict[str, str | None], str, str | None]] = {
    "worker without a bot token": (
        ["worker"],
        {"HERALD_BOT_TOKEN": None},
        "HERALD_BOT_TOKEN",
        None,
    ),
    "worker with a malformed bot token": (
        ["worker"],
        {"HERALD_BOT_TOKEN": "AAE-secret-token-without-id"},
        "HERALD_BOT_TOKEN",
        "AAE-secret-token-without-id",
    ),
    "worker with a malformed database URL": (
        ["worker"],
        {"HERALD_DATABASE_URL": "postgresql+asyncpg://herald:pg-secret-1@db:port/herald"},
        "HERALD_DATABASE_URL",
        "pg-secret-1",
    ),
    "worker with a database URL of another driver": (
        ["worker"],
        {"HERALD_DATABASE_URL": "postgresql+psycopg2://herald:pg-secret-2@db:5432/herald"},
        "HERALD_DATABASE_URL",
        "pg-secret-2",
    ),
    "worker with a malformed Redis URL": (
        ["worker"],
        {"HERALD_REDIS_URL": "http://:redis-secret-3@redis:6379/0"},
        "HERALD_REDIS_URL",
        "redis-secret-3",
    ),
    "api without a secret": (["api"], {"HERALD_JWT_SECRET": None}, "HERALD_JWT_SECRET", None),
    "api with a weak secret": (
        ["api"],
        {"HERALD_JWT_SECRET": "weak-secret-4"},
        "HERALD_JWT_SECRET",
        "weak-secret-4",
    ),
    "api with a weak previous secret (finding 11.9)": (
        ["api"],
        {"HERALD_JWT_PREVIOUS_SECRET": "x"},
        "HERALD_JWT_PREVIOUS_SECRET",
        None,
    ),
    "api with quotas that are not JSON": (
        ["api"],
        {"HERALD_INTAKE_QUOTAS": '{"billing": 200,'},
        "HERALD_INTAKE_QUOTAS",
        None,
    ),
    "api with a negative quota": (
        ["api"],
        {"HERALD_INTAKE_QUOTAS": '{"billing": -5}'},
        "HERALD_INTAKE_QUOTAS",
        None,
    ),
    "api with an unknown log level": (
        ["api"],
        {"HERALD_LOG_LEVEL": "verbose"},
        "HERALD_LOG_LEVEL",
        None,
    ),
    "api with a Redis login Redis refuses": (
        ["api"],
        {
            "HERALD_REDIS_URL": REDIS_URL.replace("redis://", "redis://nobody:redis-secret-5@"),
            "HERALD_DATABASE_URL": f"{PG_SERVER}/postgres",
        },
        "HERALD_REDIS_URL",
        "redis-secret-5",
    ),
    "migrate with a malformed database URL": (
        ["migrate"],
        {"HERALD_DATABASE_URL": "mysql://herald:pg-secret-6@db/herald"},
        "HERALD_DATABASE_URL",
        "pg-secret-6",
    ),
    "emulator with a malformed bot token": (
        ["emulator", "--port", "0"],
        {"HERALD_BOT_TOKEN": "bot-secret-7"},
        "HERALD_BOT_TOKEN",
        "bot-secret-7",
    ),
    "dev with a weak secret": (
        ["dev", "--port", "0", "--emulator-port", "0"],
        {"HERALD_JWT_SECRET": "weak-secret-8"},
        "HERALD_JWT_SECRET",
        "weak-secret-8",
    ),
    "dev with a malformed Redis URL": (
        ["dev", "--port", "0", "--emulator-port", "0"],
        {"HERALD_REDIS_URL": "redis://127.0.0.1:notaport/0"},
        "HERALD_REDIS_URL",
        None,
    ),
    "worker with callbacks that are not JSON": (
        ["worker"],
        {"HERALD_CALLBACKS": '{"billing": {"url": "http://b/h", "secret": "whsec_cb-secret-9"'},
        "HERALD_CALLBACKS",
        "cb-secret-9",
    ),
    "api with a callback secret not of the whsec_ form": (
        ["api"],
        {"HERALD_CALLBACKS": '{"billing": {"url": "http://b/h", "secret": "cb-secret-10"}}'},
        "HERALD_CALLBACKS",
        "cb-secret-10",
    ),
    "worker with a callback URL that is no URL": (
        ["worker"],
        {
            "HERALD_CALLBACKS": '{"billing": {"url": "billing.internal", "secret":'
            ' "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}}'
        },
        "HERALD_CALLBACKS",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY",
    ),
    "worker with a retry schedule of negative delays": (
        ["worker"],
        {"HERALD_CALLBACK_RETRY_SCHEDULE": "[0, -5]"},
        "HERALD_CALLBACK_RETRY_SCHEDULE",
        None,
    ),
    "token with a malformed maximum TTL": (
        ["token", "--sub", "ops", "--scope", "tasks:read"],
        {"HERALD_TOKEN_MAX_TTL_SECONDS": "a month"},
        "HERALD_TOKEN_MAX_TTL_SECONDS",
        None,
    ),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_a_bad_setting_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    args, changes, variable, secret = BAD_SETTINGS[case]
    env = valid_env()
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    result = run_herald(args, env, cwd=tmp_path)
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    [line] = result.stderr_lines
    assert line.startswith(f"herald {args[0]}: ")
    assert variable in line
    assert "Traceback" not in line
    if secret is not None:
        assert secret not in result.stderr + result.stdout
    assert "pg-password-7" not in result.stderr  # the untouched URL's password neither
    assert not (tmp_path / ".herald").exists()  # dev refused before creating anything


def test_help_needs_no_configuration(tmp_path: Path) -> None:
    env = valid_env()
    del env["HERALD_BOT_TOKEN"]
    result = run_herald(["worker", "--help"], env, cwd=tmp_path)
    assert result.returncode == 0
    assert "--max-async-tasks" in result.stdout


def json_lines(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines() if line.strip()]


def test_a_database_down_at_start_is_retried_and_logged_not_a_traceback(
    tmp_path: Path,
) -> None:
    env = valid_env()
    env["HERALD_STARTUP_WAIT_SECONDS"] = "4"
    result = run_herald(["worker", "--workers", "1"], env, cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = json_lines(result.stderr)  # every line is a log line, in the JSON format
    *retries, last = lines
    assert len(retries) >= 2  # backoff 0.5, 1, 2, then what is left of the 4 s
    for attempt, line in enumerate(retries, start=1):
        assert line["event"] == "store_unavailable"
        assert line["setting"] == "HERALD_DATABASE_URL"
        assert line["attempt"] == attempt
        assert "ConnectionRefusedError" in str(line["error"])
    assert [r["retry_in_seconds"] for r in retries[:2]] == [0.5, 1.0]
    assert last["event"] == "store_unavailable_giving_up"
    assert "pg-password-7" not in result.stderr


class LateListener:
    """A TCP port that refuses connections until `open()`, then forwards them to `target`:
    PostgreSQL coming up while a process waits for it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._server: socket.socket | None = None

    def open(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen()
        self._server = server
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._server is not None
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        return
    finally:
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@pytest.fixture
def late_postgres() -> Iterator[LateListener]:
    host_port = PG_SERVER.rsplit("@", 1)[1]
    host, port = host_port.rsplit(":", 1)
    listener = LateListener((host, int(port)))
    yield listener
    listener.close()


def test_migrate_waits_for_a_database_that_comes_up(
    tmp_path: Path, late_postgres: LateListener
) -> None:
    database = f"herald_late_{secrets.token_hex(4)}"
    env = valid_env()
    env["HERALD_DATABASE_URL"] = (
        f"postgresql+asyncpg://postgres@127.0.0.1:{late_postgres.port}/{database}"
    )
    env["HERALD_STARTUP_WAIT_SECONDS"] = "60"
    proc = subprocess.Popen(
        [HERALD, "migrate"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    lines: list[str] = []
    retries = 0
    try:
        with proc.stderr:
            for line in proc.stderr:  # PostgreSQL comes up after the second retry line
                lines.append(line)
                retries += "store_unavailable" in line
                if retries == 2 and "store_unavailable" in line:
                    late_postgres.open()
        assert proc.wait(90) == 0, "".join(lines)[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        asyncio.run(drop_database(f"{PG_SERVER}/{database}"))
    records = [json.loads(line) for line in lines]
    assert [r["event"] for r in records[:3]] == [
        "store_unavailable",
        "store_unavailable",
        "store_available",
    ]
    assert "Traceback" not in "".join(lines)
